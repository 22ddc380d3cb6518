"""Keeping every key at R live copies, and spreading keys onto new volumes.

`Repairer.step(now)` is one pass: it walks the index in batches and, for each key,
- drops from the key's node list the nodes that have been dead for `[timers] repair_after`
  (they may come back sooner: until then they still count as holders);
- when fewer than R holders remain, copies the value from a live holder to the best live node
  that does not hold it (the volume pushes it; the index is then updated atomically, only if the
  version is still current; a copy whose key changed meanwhile is dropped again).
Then, when a live volume holds far fewer keys than the average (a new, empty volume), it moves
keys to it from the fullest volume: copy, switch the index, drop the old copy. Reads keep working
throughout: the index names a holder at every moment, and a volume asked for a copy it just
dropped sends the reader back to the master.

Copies are bounded: at most `[repair] parallel` at a time and `[repair] bandwidth` bytes a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from pulzar.core.placement import Candidate, rank
from pulzar.master.nodes import Node, NodeState
from pulzar.master.service import MasterService
from pulzar.storage.records import KeyRecord

log = logging.getLogger(__name__)

_BATCH = 1000
# A pass sleeps this many times as long as each batch took: over a large index it takes at
# most a quarter of the master's event loop, and heartbeats and reads go on between batches.
_PAUSE = 3.0
# Passes nothing is known to be wrong for (see `Repairer._pass_needed`) take a tenth of the loop.
_PAUSE_ROUTINE = 9.0
# A pass that found every key at R copies is not repeated while nothing that could change that
# has happened, except once in this many seconds, as a safety net.
_RECHECK = 600.0


@dataclass(frozen=True)
class _Situation:
    """What a pass's findings depend on besides the keys' own writes: the live nodes, the
    nodes no longer counted as holders, the index's count of holder changes."""

    live: frozenset[str]
    gone: frozenset[str]
    changes: int


@dataclass
class RepairProgress:
    """What /admin/network and /metrics report about repair."""

    under_replicated: int = 0
    unavailable: int = 0
    copies_made: int = 0
    copies_failed: int = 0
    keys_moved: int = 0
    bytes_copied: int = 0
    last_pass: float | None = None
    running: bool = False
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "under_replicated": self.under_replicated,
            "unavailable": self.unavailable,
            "copies_made": self.copies_made,
            "copies_failed": self.copies_failed,
            "keys_moved": self.keys_moved,
            "bytes_copied": self.bytes_copied,
            "last_pass": self.last_pass,
            "running": self.running,
        }


class _Bandwidth:
    """A token bucket in bytes per second (0: unlimited)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._allowance = rate
        self._last = time.monotonic()

    async def take(self, size: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        self._allowance = min(self.rate, self._allowance + (now - self._last) * self.rate)
        self._last = now
        self._allowance -= size
        if self._allowance < 0:
            await asyncio.sleep(-self._allowance / self.rate)


class Repairer:
    def __init__(
        self, service: MasterService, *, grace: float, parallel: int, bandwidth: float
    ) -> None:
        self.service = service
        self.grace = grace
        self.progress = RepairProgress()
        self._slots = asyncio.Semaphore(max(1, parallel))
        self._bandwidth = _Bandwidth(bandwidth)
        #: What the last pass that found no key short started from, and when.
        self._clean: _Situation | None = None
        self._clean_at = 0.0
        #: Whether a step ran yet (the first one takes the situation as its starting point).
        self._stepped = False

    def gone(self, now: float) -> frozenset[str]:
        """Nodes no longer counted as holders: dead for longer than the grace period, or
        draining (their copies still serve reads, and are dropped once copied elsewhere)."""
        return frozenset(
            n.id
            for n in self.service.nodes.all()
            if n.draining or (n.state is NodeState.DEAD and now - n.last_seen >= self.grace)
        )

    def _situation(self, now: float) -> _Situation:
        live = frozenset(n.id for n in self.service.nodes.live())
        return _Situation(live, self.gone(now), self.service.index.holder_changes)

    def _pass_needed(self, now: float, situation: _Situation) -> float | None:
        """The pause factor of the pass to run now, or None when none is needed.

        After a pass that found every key at R copies (`_clean`), keys can only fall short
        again when a live node stops being live, a node stops counting as a holder, or a write
        leaves a key short (`Index.holder_changes`): then a pass runs at `_PAUSE`. Nodes coming
        back only refresh the count of unavailable keys, if there were any; that pass and the
        safety pass every `_RECHECK` seconds (counted from the end of the last one) run at
        `_PAUSE_ROUTINE`, lighter on the master: over 10 M keys a pass takes minutes.

        A master that just started takes the situation as it finds it as its starting point:
        the nodes it knew are loaded dead until they are back, so one that never comes back is
        seen going for good and brings a pass; a write left short before the restart waits for
        the first safety pass."""
        clean = self._clean
        if clean is None:
            if not self._stepped:
                self._clean, self._clean_at = situation, now
                return None
            return _PAUSE
        if (
            not situation.live >= clean.live
            or not situation.gone <= clean.gone
            or situation.changes != clean.changes
        ):
            return _PAUSE
        if situation.live > clean.live and self.progress.unavailable:
            return _PAUSE_ROUTINE
        if now - self._clean_at >= _RECHECK:
            return _PAUSE_ROUTINE
        return None

    async def step(self, now: float) -> None:
        """A pass over the index when one is needed (`_pass_needed`): repair what is
        under-replicated; then rebalance."""
        self.progress.running = True
        try:
            situation = self._situation(now)
            pause = self._pass_needed(now, situation)
            if pause is not None:
                started = time.perf_counter()
                if await self._repair_pass(situation.gone, now, pause):
                    took = time.perf_counter() - started
                    self._clean, self._clean_at = situation, now + took
                else:
                    self._clean = None
                self.progress.last_pass = time.time()
            await self._rebalance(now)
        finally:
            self.progress.running = False
            self._stepped = True

    async def _repair_pass(self, gone: frozenset[str], now: float, pause: float) -> bool:
        """True when no key was short of copies (keys with no live holder are only counted:
        repair cannot help them, and their holders coming back or going for good is seen).
        `gone`: the nodes no longer counted as holders, as the step's situation read them
        (`Repairer.gone`)."""
        live = {n.id: n for n in self.service.nodes.live()}
        under = unavailable = 0
        repaired = False
        after: str | None = None
        while True:
            started = time.perf_counter()
            records, after = self.service.index.scan("/", after, _BATCH, now)
            jobs: list[Coroutine[Any, Any, None]] = []
            for record in records:
                if not any(n in live for n in record.nodes):
                    unavailable += 1
                    continue
                holders = [n for n in record.nodes if n not in gone]
                if len(holders) < record.copies:
                    under += 1
                if len(holders) < len(record.nodes) or len(holders) < record.copies:
                    jobs.append(self._repair(record, holders, gone, live))
            repaired = repaired or bool(jobs)
            await asyncio.gather(*jobs)
            if after is None:
                break
            await asyncio.sleep(pause * (time.perf_counter() - started))
        self.progress.under_replicated = under
        self.progress.unavailable = unavailable
        return not (under or repaired)

    async def _set_nodes(self, record: KeyRecord, nodes: tuple[str, ...]) -> bool:
        return await self.service.index.set_nodes(record.meta.key, record.meta.version, nodes)

    async def _repair(
        self, record: KeyRecord, holders: list[str], gone: frozenset[str], live: dict[str, Node]
    ) -> None:
        """Copy `record` to new nodes until it has R holders, then point the index at them.

        A draining node stays listed (and keeps its copy) until enough copies exist without
        it; a node dead past the grace period is dropped from the list either way.
        """
        sources = [live[n] for n in record.nodes if n in live]
        candidates = [
            Candidate(n.id, float(n.beat.free_bytes))
            for n in live.values()
            if n.id not in record.nodes and not n.draining and n.beat.free_bytes > record.meta.size
        ]
        targets = rank(record.meta.key, candidates)[: max(0, record.copies - len(holders))]
        added = [t for t in targets if await self.copy(record, sources[0], live[t])]
        nodes = holders + added
        draining = [n for n in record.nodes if n in gone and n in live and live[n].draining]
        if len(nodes) < record.copies:
            nodes += draining
            draining = []
        if not nodes or tuple(nodes) == record.nodes:
            return
        if await self._set_nodes(record, tuple(nodes)):
            for node_id in added:
                await self.service.volumes.finalize(live[node_id].url, record)
            for node_id in draining:
                await self.service.volumes.drop_version(live[node_id].url, record)
        else:
            for node_id in added:
                await self.service.volumes.drop_version(live[node_id].url, record)

    async def copy(self, record: KeyRecord, source: Node, target: Node) -> bool:
        """Have `source` push `record`'s current version to `target` (stored there pending)."""
        async with self._slots:
            await self._bandwidth.take(record.meta.size)
            ok = await self.service.volumes.push_copy(
                source.url,
                record,
                target.id,
                target.url,
                self.service.config.security.ticket_ttl,
            )
        if ok:
            self.progress.copies_made += 1
            self.progress.bytes_copied += record.meta.size
        else:
            self.progress.copies_failed += 1
        return ok

    # -- rebalancing ----------------------------------------------------------------------

    async def _rebalance(self, now: float, limit: int = 200) -> None:
        """Move keys from the fullest live volume to one holding far fewer than average, as
        far as its free space goes (a volume with few keys may be full: each move would then
        fail with 507, for every key of the index, on every pass)."""
        live = self.service.nodes.writable()
        if len(live) < 2:
            return
        average = sum(n.beat.keys for n in live) / len(live)
        emptiest = min(live, key=lambda n: n.beat.keys)
        fullest = max(live, key=lambda n: n.beat.keys)
        if average < 8 or emptiest.beat.keys >= 0.8 * average:
            return
        budget = min(limit, int(average - emptiest.beat.keys))
        room = emptiest.beat.free_bytes
        after: str | None = None
        while budget > 0:
            records, after = self.service.index.scan("/", after, _BATCH, now)
            for record in records:
                if budget <= 0:
                    break
                movable = fullest.id in record.nodes and emptiest.id not in record.nodes
                fits = record.meta.size < room
                if movable and fits and await self._move(record, fullest, emptiest):
                    budget -= 1
                    room -= record.meta.size
            if after is None:
                break

    async def _move(self, record: KeyRecord, source: Node, target: Node) -> bool:
        if not await self.copy(record, source, target):
            return False
        nodes = tuple(target.id if n == source.id else n for n in record.nodes)
        if not await self._set_nodes(record, nodes):
            await self.service.volumes.drop_version(target.url, record)
            return False
        await self.service.volumes.finalize(target.url, record)
        await self.service.volumes.drop_version(source.url, record)
        self.progress.keys_moved += 1
        return True
