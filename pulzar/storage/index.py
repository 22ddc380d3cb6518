"""The master's key index in LMDB.

Sub-databases:
    keys     key -> KeyRecord (current version, metadata, nodes holding it)
    expiry   be64(expires ms) + key -> b""   (what the TTL sweep reclaims, oldest first)
    tombs    key -> be64(version) + be64(deleted ms)   (deletes, so no older copy comes back)
    meta     format, version ceiling

Reads run in the caller's thread in short read transactions; every write goes through the group
committer, so concurrent commits share an fsync and each one's checks (create-only,
compare-and-swap, "is a newer version already here?") run atomically with its write.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import orjson

from pulzar.core.errors import Conflict, KeyNotFound, PreconditionFailed, PulzarError
from pulzar.storage.groupcommit import GroupCommitter
from pulzar.storage.keycodec import KeyCodec, scan_prefix, stored_key
from pulzar.storage.lmdbenv import check_format, open_env
from pulzar.storage.records import KeyRecord, pack_key_record, unpack_key_record
from pulzar.storage.sequence import Sequence

FORMAT = 1
_CEILING = b"version_ceiling"
_CLUSTER = b"cluster_id"
_VERSION_BLOCK = 100_000
_BE64 = struct.Struct(">Q")
_TOMB = struct.Struct(">QQ")


@dataclass(frozen=True, slots=True)
class CommitResult:
    """`applied` is False when a newer version (or a newer delete) was already recorded."""

    applied: bool
    record: KeyRecord
    previous: KeyRecord | None


def _expiry_key(expires: float, key: bytes) -> bytes:
    return _BE64.pack(int(expires * 1000)) + key


def check_condition(condition: str, current: KeyRecord | None) -> None:
    """Raise `Conflict` / `PreconditionFailed` unless `condition` holds for `current`."""
    if not condition:
        return
    if condition == "*":
        if current is not None:
            raise Conflict("key already exists (create-only write)")
        return
    if current is None:
        raise PreconditionFailed("key does not exist (If-Match)")
    if condition == "exists":
        return
    kind, _, expected = condition.partition(":")
    actual = current.meta.etag if kind == "etag" else str(current.meta.version)
    if expected != actual:
        raise PreconditionFailed(f"If-Match does not match: current {kind} is {actual}")


class Index:
    def __init__(self, path: Path, *, map_size_gb: int) -> None:
        self.env = open_env(path, map_size_gb=map_size_gb)
        self._keys = self.env.open_db(b"keys")
        self._expiry = self.env.open_db(b"expiry")
        self._tombs = self.env.open_db(b"tombs")
        self._meta = self.env.open_db(b"meta")
        self._nodes = self.env.open_db(b"nodes")
        self._codec = KeyCodec(self.env)
        check_format(self.env, self._meta, FORMAT, f"index at {path}")
        self._writer = GroupCommitter(self.env, "index")
        with self.env.begin(write=True, db=self._meta) as txn:
            if txn.get(_CLUSTER) is None:
                txn.put(_CLUSTER, secrets.token_hex(8).encode())
        with self.env.begin(db=self._meta) as txn:
            #: Made with a new index: volumes use it to tell their own index from a new one.
            self.cluster_id = bytes(txn.get(_CLUSTER) or b"").decode()
        self._versions = Sequence(self.env, self._writer, self._meta, _CEILING, _VERSION_BLOCK)
        self._versions.reserve_sync()
        #: Counts the writes that may have left a key with fewer holders than its copies (a
        #: commit short of R, a change of holders, a restore): repair passes only when it moved
        #: or the nodes changed. Bumped once the write is done, so a pass that starts after it
        #: sees the write.
        self.holder_changes = 0

    @property
    def writer(self) -> GroupCommitter:
        """The environment's one writer, for other stores kept in the same environment."""
        return self._writer

    def close(self) -> None:
        self._writer.close()
        self.env.close()

    # -- versions -------------------------------------------------------------------------

    async def next_version(self) -> int:
        """A version larger than any handed out before, across restarts."""
        return await self._versions.next()

    def next_version_now(self) -> int | None:
        """`next_version` when it needs no write first (almost always); else None."""
        return self._versions.next_now()

    # -- reads ----------------------------------------------------------------------------

    def get(self, key: str, now: float) -> KeyRecord | None:
        """The live record of `key`, or None when it is missing or expired."""
        with self.env.begin(db=self._keys, buffers=True) as txn:
            raw = txn.get(stored_key(key))
            if raw is None:
                return None
            record = unpack_key_record(key, raw)
        return None if record.meta.is_expired(now) else record

    def scan(
        self, prefix: str, after: str | None, limit: int, now: float
    ) -> tuple[list[KeyRecord], str | None]:
        """Up to `limit` live records whose key starts with `prefix`, in key order, after
        `after`; and the token for the next page (None on the last page)."""
        pfx, check_full = scan_prefix(prefix)
        skip = stored_key(after) if after else None
        start = max(pfx, skip) if skip else pfx
        out: list[KeyRecord] = []
        next_token: str | None = None
        with self.env.begin(db=self._keys, buffers=True) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(start):
                return out, None
            for raw_key, raw in cursor:
                key_bytes = bytes(raw_key)
                if not key_bytes.startswith(pfx):
                    break
                if key_bytes == skip:
                    continue
                name = self._codec.decode(txn, key_bytes)
                if check_full and not name.startswith(prefix):
                    continue
                record = unpack_key_record(name, raw)
                if record.meta.is_expired(now):
                    continue
                if len(out) == limit:
                    next_token = out[-1].meta.key
                    break
                out.append(record)
        return out, next_token

    def iter_records(self) -> Iterator[KeyRecord]:
        with self.env.begin(db=self._keys, buffers=True) as txn:
            for raw_key, raw in txn.cursor():
                yield unpack_key_record(self._codec.decode(txn, bytes(raw_key)), raw)

    def expired(self, now: float, limit: int = 1000) -> list[tuple[str, int]]:
        """(key, version) of up to `limit` records whose expiry has passed, oldest first."""
        cutoff = int(now * 1000)
        found: list[tuple[str, int]] = []
        with self.env.begin(buffers=True) as txn:
            for raw_key, _ in txn.cursor(db=self._expiry):
                when = _BE64.unpack_from(raw_key)[0]
                if when > cutoff or len(found) >= limit:
                    break
                stored = bytes(raw_key[8:])
                key = self._codec.decode(txn, stored)
                raw = txn.get(stored, db=self._keys)
                if raw is not None:
                    found.append((key, unpack_key_record(key, raw).meta.version))
        return found

    def tombstone(self, key: str) -> int | None:
        with self.env.begin(db=self._tombs) as txn:
            raw = txn.get(stored_key(key))
        return None if raw is None else int(_TOMB.unpack(raw)[0])

    def stat(self) -> dict[str, Any]:
        """LMDB's own statistics of the keys sub-database (the original's /admin/status)."""
        with self.env.begin() as txn:
            stat = txn.stat(self._keys)
        return {
            "psize": stat["psize"],
            "depth": stat["depth"],
            "branch_pages": stat["branch_pages"],
            "leaf_pages": stat["leaf_pages"],
            "overflow_pages": stat["overflow_pages"],
            "entries": stat["entries"],
        }

    # -- writes ---------------------------------------------------------------------------

    def _remove(self, txn: lmdb.Transaction, key: bytes, record: KeyRecord) -> None:
        txn.delete(key, db=self._keys)
        if record.meta.expires is not None:
            txn.delete(_expiry_key(record.meta.expires, key), db=self._expiry)

    async def commit(self, record: KeyRecord, condition: str, now: float) -> CommitResult:
        """Make `record` the key's current version, atomically with `condition`'s check.

        A record older than what is already stored (or than the key's last delete) is not
        applied: last writer wins by version. Raises `Conflict` or `PreconditionFailed`.
        """
        (result,) = await self.commit_many([(record, condition)], now)
        if isinstance(result, PulzarError):
            raise result
        return result

    async def commit_many(
        self, commits: list[tuple[KeyRecord, str]], now: float
    ) -> list[CommitResult | PulzarError]:
        """`commit` of each (record, condition) on its own, in one operation of the batch;
        a commit's `Conflict` or `PreconditionFailed` is its result."""
        if not commits:
            return []

        def op(txn: lmdb.Transaction) -> list[CommitResult | PulzarError]:
            results: list[CommitResult | PulzarError] = []
            for record, condition in commits:
                try:
                    results.append(self._commit_in(txn, record, condition, now))
                except PulzarError as exc:
                    results.append(exc)
            return results

        results = await self._writer.write(op)
        for result in results:
            if (
                isinstance(result, CommitResult)
                and result.applied
                and len(result.record.nodes) < result.record.copies
            ):
                self.holder_changes += 1
        return results

    def _commit_in(
        self, txn: lmdb.Transaction, record: KeyRecord, condition: str, now: float
    ) -> CommitResult:
        """One commit inside a write batch; raises (before writing) when `condition` fails."""
        key = stored_key(record.meta.key)
        raw = txn.get(key, db=self._keys)
        stored = None if raw is None else unpack_key_record(record.meta.key, raw)
        current = None if stored is None or stored.meta.is_expired(now) else stored
        check_condition(condition, current)
        if stored is not None and stored.meta.version > record.meta.version:
            return CommitResult(False, record, stored)
        tomb = txn.get(key, db=self._tombs)
        if tomb is not None and _TOMB.unpack(tomb)[0] > record.meta.version:
            return CommitResult(False, record, stored)
        if stored is not None:
            self._remove(txn, key, stored)
        if tomb is not None:
            txn.delete(key, db=self._tombs)
        txn.put(key, pack_key_record(record), db=self._keys)
        self._codec.remember(txn, record.meta.key, key)
        if record.meta.expires is not None:
            txn.put(_expiry_key(record.meta.expires, key), b"", db=self._expiry)
        return CommitResult(True, record, stored)

    async def delete(
        self, key: str, version: int, now: float, *, expired_only: bool = False
    ) -> KeyRecord:
        """Remove `key`, leaving a tombstone at `version`; return the removed record.

        Raises `KeyNotFound` when the key is missing (or, unless `expired_only`, expired).
        With `expired_only`, removes the key only if it has indeed expired.
        """
        kb = stored_key(key)

        def op(txn: lmdb.Transaction) -> KeyRecord:
            raw = txn.get(kb, db=self._keys)
            if raw is None:
                raise KeyNotFound(f"key not found: {key}")
            record = unpack_key_record(key, raw)
            if record.meta.is_expired(now) != expired_only:
                raise KeyNotFound(f"key not found: {key}")
            self._remove(txn, kb, record)
            txn.put(kb, _TOMB.pack(version, int(now * 1000)), db=self._tombs)
            return record

        return await self._writer.write(op)

    async def set_nodes(self, key: str, version: int, nodes: tuple[str, ...]) -> bool:
        """Change which nodes hold `key`, if `version` is still its current version. Leaving
        it short of its copies counts as a holder change (moving a copy does not)."""
        kb = stored_key(key)

        def op(txn: lmdb.Transaction) -> tuple[bool, bool]:
            raw = txn.get(kb, db=self._keys)
            if raw is None:
                return False, False
            record = unpack_key_record(key, raw)
            if record.meta.version != version:
                return False, False
            txn.put(kb, pack_key_record(record.with_nodes(nodes)), db=self._keys)
            return True, len(nodes) < record.copies

        changed, short = await self._writer.write(op)
        if short:
            self.holder_changes += 1
        return changed

    async def adopt_cluster_id(self, cluster_id: str) -> None:
        """Take the identity of the cluster whose volumes this index was rebuilt from."""

        def op(txn: lmdb.Transaction) -> None:
            txn.put(_CLUSTER, cluster_id.encode(), db=self._meta)

        await self._writer.write(op)
        self.cluster_id = cluster_id

    async def restore(
        self, records: list[KeyRecord], tombs: dict[str, int], highest_version: int
    ) -> None:
        """Write records rebuilt from the volumes (or a backup) as they are, record the
        deletes, and keep new versions above `highest_version`."""

        def op(txn: lmdb.Transaction) -> None:
            for record in records:
                key = stored_key(record.meta.key)
                raw = txn.get(key, db=self._keys)
                if raw is not None:
                    old = unpack_key_record(record.meta.key, raw)
                    if old.meta.version >= record.meta.version:
                        continue
                    self._remove(txn, key, old)
                txn.put(key, pack_key_record(record), db=self._keys)
                self._codec.remember(txn, record.meta.key, key)
                if record.meta.expires is not None:
                    txn.put(_expiry_key(record.meta.expires, key), b"", db=self._expiry)
            for name, version in tombs.items():
                txn.put(stored_key(name), _TOMB.pack(version, 0), db=self._tombs)

        await self._writer.write(op)
        self.holder_changes += 1
        await self.ensure_version_above(highest_version)

    async def ensure_version_above(self, version: int) -> None:
        """Make every version handed out from now on larger than `version`."""
        await self._versions.skip_past(version)

    def is_empty(self) -> bool:
        with self.env.begin() as txn:
            return int(txn.stat(self._keys)["entries"]) == 0

    def known_nodes(self) -> list[dict[str, str]]:
        """Every volume that ever registered (`id`, `name`, `url`), so that a restarted
        master knows how many copies the cluster keeps before the volumes are back."""
        with self.env.begin(db=self._nodes) as txn:
            return [orjson.loads(raw) for _, raw in txn.cursor()]

    async def save_node(self, node_id: str, name: str, url: str) -> None:
        record = orjson.dumps({"id": node_id, "name": name, "url": url})

        def op(txn: lmdb.Transaction) -> None:
            txn.put(node_id.encode(), record, db=self._nodes)

        await self._writer.write(op)

    async def forget_node(self, node_id: str) -> None:
        await self._writer.write(lambda txn: txn.delete(node_id.encode(), db=self._nodes))
