"""The master's service object: plans writes, locates reads, commits, deletes, sweeps.

It knows nothing of HTTP requests; `app.py` parses, calls these methods and maps the result.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pulzar.core.config import Config
from pulzar.core.errors import (
    BadRequest,
    InsufficientStorage,
    KeyNotFound,
    NoLiveVolume,
    PayloadTooLarge,
    PulzarError,
)
from pulzar.core.placement import Candidate, rank
from pulzar.core.tickets import WriteTicket, sign_read_ticket, sign_ticket
from pulzar.master.nodes import Heartbeat, Node, NodeRegistry
from pulzar.master.views import key_json
from pulzar.master.volumes import VolumeCalls
from pulzar.storage.index import CommitResult, Index, check_condition
from pulzar.storage.records import KeyRecord, ValueMeta

log = logging.getLogger(__name__)

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """What a client asks of a write, before its version and volumes are picked."""

    key: str
    #: The body's size when known (checked against the limit and the volumes' room).
    size: int | None = None
    ttl_days: float | None = None
    #: R asked for this write (None: the configured or automatic one).
    replicas: int | None = None
    #: "" none, "*" create-only, "etag:<hex>", "version:<n>" or "exists" (see `check_condition`).
    condition: str = ""
    request_id: str = ""
    #: A backup's metadata when restoring: the value keeps its version and times.
    restoring: ValueMeta | None = None


@dataclass(frozen=True, slots=True)
class WritePlan:
    """Where a write goes: the primary volume's URL (with its ticket) and the ticket itself."""

    url: str
    ticket: WriteTicket


def commit_record(meta: ValueMeta, nodes: tuple[str, ...], copies: int) -> KeyRecord:
    """The index record of a commit; `BadRequest` when it cannot be one."""
    if not nodes:
        raise BadRequest("a commit must name the nodes holding the value")
    if not 1 <= copies <= 16:
        raise BadRequest("copies must be between 1 and 16")
    return KeyRecord(meta, nodes, copies)


class MasterService:
    def __init__(self, config: Config, index: Index, nodes: NodeRegistry, secret: str) -> None:
        self.config = config
        self.index = index
        self.nodes = nodes
        self.secret = secret
        self.volumes = VolumeCalls(secret, config.security)
        self.max_bytes = config.general.maxsize * 1024 * 1024
        #: Called with a node each time it (re)connects its heartbeat.
        self.join_listeners: list[Callable[[Node], None]] = []
        #: The writable nodes as placement candidates, and the registry's generation they
        #: were read at (see `_candidates`).
        self._candidates_at: tuple[int, list[tuple[Node, Candidate]]] = (-1, [])

    # -- writes ---------------------------------------------------------------------------

    def replicas_for(self, requested: int | None) -> tuple[int, int]:
        """(R, W) for a write: copies to make and copies durable before the acknowledgement.

        R is the request's, else the configured one, else 2 when the cluster has two or more
        volumes (counting dead ones: a death must not quietly lower the number of copies).
        """
        auto = 2 if len(self.nodes) >= 2 else 1
        copies = requested or self.config.general.replicas or auto
        quorum = min(self.config.general.write_quorum or copies, copies)
        return copies, quorum

    def choose_nodes(self, key: str, size: int, quorum: int, limit: int) -> list[Node]:
        """Live nodes with room for `size` bytes, best first by weighted rendezvous hashing
        (at most `limit`); at least `quorum` of them, else `NoLiveVolume`."""
        live = {c.node_id: (n, c) for n, c in self._candidates() if n.beat.free_bytes > size}
        if len(live) < quorum:
            have = len(live)
            # Enough volumes are up but too few have room: the cluster is full (507), not down.
            error = InsufficientStorage if len(self.nodes.live()) >= quorum else NoLiveVolume
            raise error(
                f"{quorum} durable copies needed but {have} live "
                f"volume{'s' if have != 1 else ''} with room"
            )
        ranked = rank(key, [c for _, c in live.values()])
        return [live[node_id][0] for node_id in ranked[:limit]]

    def _candidates(self) -> list[tuple[Node, Candidate]]:
        """Writable nodes that are not full, weighted by free space; read again only when the
        registry changed (every heartbeat does)."""
        generation, candidates = self._candidates_at
        if generation != self.nodes.generation:
            candidates = [
                (n, Candidate(n.id, float(n.beat.free_bytes)))
                for n in self.nodes.writable()
                if n.beat.percent < 100
            ]
            self._candidates_at = (self.nodes.generation, candidates)
        return candidates

    async def plan_write(self, asked: WriteRequest, now: float) -> WritePlan:
        """Check what can be checked before the upload and pick the volumes and the version.

        The condition is checked here to fail early, and again atomically at commit. A restore
        (`asked.restoring`) keeps the value's version and times.
        """
        if asked.restoring is not None:
            await self.index.ensure_version_above(asked.restoring.version)
            version = asked.restoring.version
        else:
            version = await self.index.next_version()
        return self._plan(asked, version, now)

    def plan_write_now(self, asked: WriteRequest, now: float) -> WritePlan | None:
        """`plan_write` when the version needs no write first; else None."""
        version = self.index.next_version_now()
        if version is None:
            return None
        return self._plan(asked, version, now)

    def _plan(self, asked: WriteRequest, version: int, now: float) -> WritePlan:
        key, size, restoring = asked.key, asked.size, asked.restoring
        if size is not None and size > self.max_bytes:
            raise PayloadTooLarge(
                f"value of {size} bytes is over the limit of {self.config.general.maxsize} MiB"
            )
        current = self.index.get(key, now)
        check_condition(asked.condition, current)
        copies, quorum = self.replicas_for(asked.replicas)
        # Two spares beyond R take a copy when a chosen replica cannot be reached.
        chosen = self.choose_nodes(key, size or 0, quorum, copies + 2)
        ticket = WriteTicket(
            key=key,
            version=version,
            nodes=tuple(n.id for n in chosen),
            urls=tuple(n.url for n in chosen),
            expires_at=now + self.config.security.ticket_ttl,
            ttl=None if asked.ttl_days is None else asked.ttl_days * DAY,
            condition=asked.condition,
            request_id=asked.request_id,
            created=restoring.created if restoring else current.meta.created if current else None,
            copies=copies,
            quorum=quorum,
            modified=restoring.modified if restoring else None,
            expires=restoring.expires if restoring else None,
        )
        url = f"{chosen[0].url}/add_key{quote(key)}?t={sign_ticket(self.secret, ticket)}"
        if asked.request_id:
            url += f"&rid={asked.request_id}"
        return WritePlan(url, ticket)

    async def commit(self, record: KeyRecord, condition: str, now: float) -> CommitResult:
        """Record a value that volumes hold durably (`commit_record`); delete copies it makes
        obsolete."""
        (result,) = await self.commit_many([(record, condition)], now)
        if isinstance(result, PulzarError):
            raise result
        return result

    async def commit_many(
        self, commits: list[tuple[KeyRecord, str]], now: float
    ) -> list[CommitResult | PulzarError]:
        """`commit` of several values (records from `commit_record`, conditions) in one go;
        each gets its own result or error."""
        results = await self.index.commit_many(commits, now)
        for result in results:
            if isinstance(result, CommitResult) and result.applied and result.previous:
                # Nodes that also hold the new version drop the old one on finalize.
                stale = [n for n in result.previous.nodes if n not in result.record.nodes]
                self._delete_copies(result.previous, stale)
        return results

    def _delete_copies(self, record: KeyRecord, node_ids: list[str] | tuple[str, ...]) -> None:
        targets = []
        for node_id in node_ids:
            node = self.nodes.get(node_id)
            if node is not None:
                targets.append((node.url, record.meta.key, record.meta.version))
        self.volumes.delete_later(targets)

    async def delete(self, key: str, now: float) -> KeyRecord:
        """Durably remove `key` from the index (tombstone first), then from the volumes."""
        record = await self.index.delete(key, await self.index.next_version(), now)
        self._delete_copies(record, record.nodes)
        return record

    async def sweep_expired(self, now: float) -> int:
        """Reclaim keys whose TTL has passed (they already read as missing). Returns a count."""
        done = 0
        for key, _ in self.index.expired(now):
            try:
                record = await self.index.delete(
                    key, await self.index.next_version(), now, expired_only=True
                )
            except KeyNotFound:
                continue
            self._delete_copies(record, record.nodes)
            done += 1
        return done

    # -- reads ----------------------------------------------------------------------------

    def record(self, key: str, now: float) -> KeyRecord:
        record = self.index.get(key, now)
        if record is None:
            raise KeyNotFound(f"key not found: {key}")
        return record

    def locate(self, key: str, now: float, skip: str = "") -> tuple[str, KeyRecord]:
        """The URL of a live copy of `key`'s current version, picked at random among the
        replicas (spreading reads), leaving out the node ids in `skip` (comma-separated:
        replicas that already failed this reader)."""
        record = self.record(key, now)
        skipped = set(skip.split(",")) if skip else set()
        live = [
            node
            for node_id in record.nodes
            if node_id not in skipped
            and (node := self.nodes.get(node_id)) is not None
            and node.alive
        ]
        if not live:
            raise NoLiveVolume(f"no live volume holds {key} right now")
        node = live[0] if len(live) == 1 else random.choice(live)
        # `n` names the node, so that a client that cannot reach it can ask again without it.
        url = f"{node.url}/get_key{quote(key)}?v={record.meta.version}&n={node.id}"
        if self.config.security.token:
            expires = now + self.config.security.read_ticket_ttl
            url += f"&rt={sign_read_ticket(self.secret, key, expires)}"
        return (f"{url}&skip={skip}" if skip else url), record

    def describe(self, record: KeyRecord) -> dict[str, Any]:
        """The /stat_key view of a record, replicas included."""
        body = key_json(record.meta)
        body.update(
            etag=record.meta.etag,
            checksum="sha256:" + record.meta.etag,
            content_type=record.meta.content_type,
            replicas=[self._replica_json(n) for n in record.nodes],
        )
        return body

    def _replica_json(self, node_id: str) -> dict[str, Any]:
        node = self.nodes.get(node_id)
        if node is None:
            return {"id": node_id, "node": None, "url": None, "state": "unknown"}
        return {"id": node.id, "node": node.name, "url": node.url, "state": node.state.value}

    # -- nodes ----------------------------------------------------------------------------

    def heartbeat(self, body: dict[str, Any], now: float) -> Node:
        try:
            beat = Heartbeat.from_json(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"malformed heartbeat: {exc}") from None
        known = self.nodes.get(beat.node_id)
        if known is None or (known.name, known.url) != (beat.name, beat.url):
            self.volumes.spawn(self.index.save_node(beat.node_id, beat.name, beat.url))
        return self.nodes.heartbeat(beat, now)

    def holds(self, node: str | None, pairs: list[tuple[str, int]], now: float) -> list[bool]:
        """For each (key, version): is it current, and listed on `node` (when given)?"""
        keep = []
        for key, version in pairs:
            record = self.index.get(key, now)
            keep.append(
                record is not None
                and record.meta.version == version
                and (node is None or node in record.nodes)
            )
        return keep

    async def copy_lost(self, key: str, version: int, node: str, now: float) -> None:
        """Stop counting `node` as a holder of `key`'s `version`; repair makes a new copy."""
        record = self.index.get(key, now)
        if record is not None and record.meta.version == version and node in record.nodes:
            nodes = tuple(n for n in record.nodes if n != node)
            await self.index.set_nodes(key, version, nodes)

    def joined(self, node: Node) -> None:
        for listener in self.join_listeners:
            listener(node)

    def healthy(self) -> bool:
        return len(self.nodes.live()) >= 1
