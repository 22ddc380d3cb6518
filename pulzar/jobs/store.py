"""Job and schedule records in the master's LMDB environment (beside the key index).

Sub-databases:
    jobs       be64(id) -> Job (JSON)
    schedules  be64(id) -> Schedule (JSON)
    jobmeta    id ceiling

Job ids and schedule ids come from one sequence, so `cancel_job/{id}` is never ambiguous. Ids
are handed out from memory below a ceiling recorded ahead (as versions are), so a restart may
skip some numbers but never reuses one. Writes go through the environment's group committer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import lmdb

from pulzar.jobs.model import Job, Schedule
from pulzar.storage.groupcommit import GroupCommitter
from pulzar.storage.sequence import Sequence

_BE64 = struct.Struct(">Q")
_CEILING = b"id_ceiling"
_BLOCK = 1000


class JobStore:
    def __init__(self, env: lmdb.Environment, writer: GroupCommitter) -> None:
        self.env = env
        self._writer = writer
        self._jobs = env.open_db(b"jobs")
        self._schedules = env.open_db(b"schedules")
        self._ids = Sequence(env, writer, env.open_db(b"jobmeta"), _CEILING, _BLOCK)

    async def next_id(self) -> int:
        """The next id of a run or a schedule (one sequence for both)."""
        return await self._ids.next()

    async def skip_ids_past(self, number: int) -> None:
        await self._ids.skip_past(number)

    # -- jobs -----------------------------------------------------------------------------

    async def save_jobs(self, jobs: list[Job]) -> None:
        """Write job records durably (one batch)."""
        records = [(_BE64.pack(j.id), j.to_bytes()) for j in jobs]

        def op(txn: lmdb.Transaction) -> None:
            for key, value in records:
                txn.put(key, value, db=self._jobs)

        await self._writer.write(op)

    def get_job(self, job_id: int) -> Job | None:
        with self.env.begin(db=self._jobs) as txn:
            raw = txn.get(_BE64.pack(job_id))
        return None if raw is None else Job.from_bytes(raw)

    def jobs(self, newest_first: bool = True, after: int | None = None) -> Iterator[Job]:
        """Every job record, newest first (or oldest first), starting after id `after`."""
        with self.env.begin(db=self._jobs) as txn:
            cursor = txn.cursor()
            if newest_first:
                found = cursor.set_range(_BE64.pack(after)) if after else cursor.last()
                if after and found:
                    found = cursor.prev()
                elif after:
                    found = cursor.last()
                step = cursor.prev
            else:
                found = cursor.set_range(_BE64.pack(after + 1)) if after else cursor.first()
                step = cursor.next
            while found:
                yield Job.from_bytes(cursor.value())
                found = step()

    async def delete_jobs(self, ids: list[int]) -> None:
        keys = [_BE64.pack(i) for i in ids]

        def op(txn: lmdb.Transaction) -> None:
            for key in keys:
                txn.delete(key, db=self._jobs)

        await self._writer.write(op)

    # -- schedules ------------------------------------------------------------------------

    async def save_schedule(self, schedule: Schedule, fired: Job | None = None) -> None:
        """Write a schedule, and the run it just fired in the same transaction: a firing is
        recorded exactly once, or not at all."""
        key, value = _BE64.pack(schedule.id), schedule.to_bytes()
        run = None if fired is None else (_BE64.pack(fired.id), fired.to_bytes())

        def op(txn: lmdb.Transaction) -> None:
            txn.put(key, value, db=self._schedules)
            if run is not None:
                txn.put(run[0], run[1], db=self._jobs)

        await self._writer.write(op)

    def schedules(self) -> list[Schedule]:
        with self.env.begin(db=self._schedules) as txn:
            return [Schedule.from_bytes(raw) for _, raw in txn.cursor()]

    def get_schedule(self, schedule_id: int) -> Schedule | None:
        with self.env.begin(db=self._schedules) as txn:
            raw = txn.get(_BE64.pack(schedule_id))
        return None if raw is None else Schedule.from_bytes(raw)
