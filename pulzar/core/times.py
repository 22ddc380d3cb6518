"""Times in answers: epoch seconds shown as ISO-8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float | None) -> str | None:
    """`1795948553.835` -> `"2026-11-29T10:35:53.835Z"`; None stays None."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
