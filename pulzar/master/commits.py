"""A commit as it travels from a volume to the master (step 4 of the write path): the JSON of
one, and a batch of them answered entry by entry. Both the HTTP routes
(`/internal/commit`, `/internal/commits`) and the volumes' channel take them."""

from __future__ import annotations

from typing import Any

from pulzar.core.errors import BadRequest, PulzarError
from pulzar.master.service import MasterService, commit_record
from pulzar.storage.index import CommitResult
from pulzar.storage.records import KeyRecord, ValueMeta


def parse(body: dict[str, Any]) -> tuple[KeyRecord, str]:
    """A commit's index record and condition; `BadRequest` when it is not one."""
    try:
        meta = ValueMeta.from_json(body)
        nodes = tuple(str(n) for n in body["nodes"])
        copies = int(body.get("copies", len(nodes)))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"malformed commit: {exc}") from None
    return commit_record(meta, nodes, copies), str(body.get("condition", ""))


async def apply(svc: MasterService, entries: Any, now: float) -> list[dict[str, Any]]:
    """Apply each commit on its own (they share the index's group commit). The answer lists,
    in order, `{"applied": ..}` or the commit's error as `{"status": code, "msg": ..}`."""
    if not isinstance(entries, list):
        raise BadRequest("'commits' must be a list of commits")
    parsed: list[tuple[KeyRecord, str] | PulzarError] = []
    for entry in entries:
        try:
            if not isinstance(entry, dict):
                raise BadRequest("a commit must be a JSON object")
            parsed.append(parse(entry))
        except PulzarError as exc:
            parsed.append(exc)
    applied = iter(
        await svc.commit_many([p for p in parsed if not isinstance(p, PulzarError)], now)
    )
    return [_answer(p if isinstance(p, PulzarError) else next(applied)) for p in parsed]


def _answer(result: CommitResult | PulzarError) -> dict[str, Any]:
    if isinstance(result, PulzarError):
        return {"status": result.status, "msg": result.message}
    return {"applied": result.applied}
