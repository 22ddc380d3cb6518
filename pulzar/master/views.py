"""JSON shapes of index records in answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pulzar.storage.records import ValueMeta


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC (`2026-11-29T10:17:05.123Z`)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def key_json(meta: ValueMeta) -> dict[str, Any]:
    """One entry of /list_keys: key, size, version, created, expires (and modified)."""
    return {
        "key": meta.key,
        "size": meta.size,
        "version": meta.version,
        "created": iso(meta.created),
        "modified": iso(meta.modified),
        "expires": iso(meta.expires),
        "etag": meta.etag,
        "content_type": meta.content_type,
    }
