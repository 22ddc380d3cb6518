"""JSON shapes of index records in answers."""

from __future__ import annotations

from typing import Any

from pulzar.core.times import iso
from pulzar.storage.records import ValueMeta


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
