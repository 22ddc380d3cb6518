"""A volume's value store: small values inline in LMDB, large ones as files.

Layout under the volume's data directory:
    index/   LMDB: objects (key NUL be64(version) -> record), pending, meta
    blobs/   large values, blobs/ab/cd/<sha256(key)[:32]>-<version>
    tmp/     uploads in progress (same filesystem, so the final rename is atomic)

A record is a flags byte, the value's own metadata (`ValueMeta`: key, version, size, checksum,
times, TTL, content type) and, for inline values, the bytes. Every value can so be indexed again
from the volume alone.

Several versions of a key may sit here for a moment: a new version is stored beside the old one
and becomes the only one when the master has committed it (`finalize`). Until then it is
*pending*; a crash leaves pending records that `pending()` lists for the volume to settle with
the master (keep what the master has, drop the rest).
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from pulzar.core.errors import InsufficientStorage
from pulzar.storage.groupcommit import GroupCommitter
from pulzar.storage.hotcache import HotValues
from pulzar.storage.keycodec import KeyCodec, stored_key
from pulzar.storage.lmdbenv import check_format, open_env, storage_error
from pulzar.storage.records import ValueMeta, pack_meta, unpack_meta

FORMAT = 1
_INLINE = 1
_BE64 = struct.Struct(">Q")
_USED = b"used_bytes"
#: The most buffers one `writev` takes (Linux's IOV_MAX).
_IOV_MAX = 1024
# Values larger than this are not kept in the read cache.
_HOT_MAX_VALUE = 64 * 1024
# The disk's free space is asked again after this many seconds, or sooner when what was
# taken since the last answer leaves less than `_DISK_MARGIN` (a `statvfs` per write costs
# more than the rest of a small write's checks).
_DISK_RECHECK = 0.5
_DISK_MARGIN = 256 * 1024 * 1024


def _object_key(key: str, version: int) -> bytes:
    return stored_key(key) + b"\x00" + _BE64.pack(version)


def _split_object_key(raw: bytes) -> tuple[bytes, int]:
    """(stored key, version) of an object key."""
    return raw[:-9], _BE64.unpack(raw[-8:])[0]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class StoredValue:
    meta: ValueMeta
    #: The bytes of an inline value; None for a file-backed one.
    data: bytes | None
    #: The file of a large value; None for an inline one.
    path: Path | None

    def verify(self) -> bool:
        """True when the inline bytes match the checksum (file values: see `verify_fully`)."""
        if self.data is None:
            return True
        return hashlib.sha256(self.data).digest() == self.meta.checksum

    def verify_fully(self) -> bool:
        """Also read and hash a file value (slow for large ones: run it in a thread)."""
        if self.path is None:
            return self.verify()
        digest = hashlib.sha256()
        try:
            with open(self.path, "rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    digest.update(chunk)
        except OSError:
            return False
        return digest.digest() == self.meta.checksum


def _load_sync_file_range() -> Any:
    """Linux's `sync_file_range` (Python's `os` has none), or None where the C library lacks
    it: then the writes simply wait for their `fsync`."""
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


_sync_file_range = _load_sync_file_range()
#: Start writing the range's dirty pages to the disk, without waiting for them.
_SYNC_FILE_RANGE_WRITE = 2


class BlobWriter:
    """A value being received: a temp file in the store's tmp/ and a running checksum.

    Each batch written is sent on to the disk at once (`sync_file_range`, not waited for), so
    that the `fsync` at the end of a large upload finds little left to write: a 1 GiB upload
    then does not stop for the whole file's writeback at its end."""

    def __init__(self, tmp_dir: Path) -> None:
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="up-")
        self._fd: int | None = fd
        self.path = Path(name)
        self.size = 0
        self._hash = hashlib.sha256()

    def write(self, *chunks: bytes) -> None:
        """Append `chunks` (one system call for all of them, unless the disk takes less)."""
        assert self._fd is not None
        left = [memoryview(chunk) for chunk in chunks if chunk]
        first = 0
        while first < len(left):
            written = os.writev(self._fd, left[first : first + _IOV_MAX])
            while first < len(left) and written >= len(left[first]):
                written -= len(left[first])
                first += 1
            if written:
                left[first] = left[first][written:]
        start = self.size
        for chunk in chunks:
            self._hash.update(chunk)
            self.size += len(chunk)
        if _sync_file_range is not None and self.size > start:
            # A failure leaves the bytes to the `fsync` of `finish`, as without it.
            _sync_file_range(self._fd, start, self.size - start, _SYNC_FILE_RANGE_WRITE)

    @property
    def checksum(self) -> bytes:
        return self._hash.digest()

    def finish(self) -> None:
        """Make the bytes durable (the caller then hands the writer to `ValueStore.put`)."""
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)


class ValueStore:
    def __init__(
        self, root: Path, *, map_size_gb: int, max_bytes: int = 0, cache_bytes: int = 0
    ) -> None:
        """`cache_bytes`: memory for recently read small values (`HotValues`; 0: none)."""
        self.root = root
        self.blobs = root / "blobs"
        self.tmp = root / "tmp"
        for d in (self.blobs, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        # Uploads cut short by a crash leave temp files only; nothing refers to them.
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
        self.max_bytes = max_bytes
        #: The disk's free bytes at the last `statvfs`, when (monotonic), and the bytes
        #: handed out since (see `_disk_free`).
        self._disk_free_seen = 0
        self._disk_seen_at = -1e9
        self._disk_taken = 0
        self.env = open_env(root / "index", map_size_gb=map_size_gb)
        self._objects = self.env.open_db(b"objects")
        self._pending = self.env.open_db(b"pending")
        self._meta = self.env.open_db(b"meta")
        self._tombs = self.env.open_db(b"tombs")
        self._codec = KeyCodec(self.env)
        #: Object keys the master has committed whose finalize is still queued.
        self._finalizing: set[bytes] = set()
        check_format(self.env, self._meta, FORMAT, f"volume store at {root}")
        with self.env.begin(db=self._meta) as txn:
            raw = txn.get(_USED)
        self.used_bytes = int(raw) if raw else 0
        #: `used_bytes` as of the last committed write batch (writer thread only).
        self._used_committed = self.used_bytes
        self._hot: HotValues[StoredValue] = HotValues(cache_bytes, _HOT_MAX_VALUE)
        #: Versions dropped or rewritten by the write batch in progress (writer thread only).
        self._changed: list[tuple[str, int]] = []
        #: Object keys the batch in progress finalizes (writer thread only): they leave
        #: `_finalizing` once the batch is over, not before readers can see it committed.
        self._finalized: list[bytes] = []
        self._writer = GroupCommitter(
            self.env, "values", after_batch=self._after_batch, before_commit=self._save_used
        )

    def close(self) -> None:
        self._writer.close()
        self.env.close()

    # -- space ----------------------------------------------------------------------------

    def disk_usage(self) -> tuple[int, int]:
        """(used, capacity) in bytes: against `max_bytes` when set, else the disk itself."""
        if self.max_bytes:
            return self.used_bytes, self.max_bytes
        usage = shutil.disk_usage(self.root)
        return usage.used, usage.total

    def free_bytes(self) -> int:
        if self.max_bytes:
            return max(0, self.max_bytes - self.used_bytes)
        self._disk_free_seen = shutil.disk_usage(self.root).free
        self._disk_seen_at, self._disk_taken = time.monotonic(), 0
        return self._disk_free_seen

    def _disk_free(self, size: int) -> int:
        """The disk's free bytes for a value of `size`: from the last `statvfs` less what
        was handed out since, asked again when that is old or the room is getting short."""
        estimate = self._disk_free_seen - self._disk_taken
        if time.monotonic() - self._disk_seen_at > _DISK_RECHECK or estimate - size < _DISK_MARGIN:
            estimate = self.free_bytes()
        self._disk_taken += max(size, 0)
        return estimate

    def ensure_room(self, size: int, *, written: int = 0) -> None:
        """Raise `InsufficientStorage` when a value of `size` bytes would not fit; `written`
        of them are already in tmp/ (they take disk space, but count against `max_bytes`
        only once the value is stored)."""
        if self.max_bytes:
            room = self.free_bytes()
        else:
            size -= written
            room = self._disk_free(size)
        if size > room:
            raise InsufficientStorage("volume is full")

    def count(self) -> int:
        with self.env.begin() as txn:
            return int(txn.stat(self._objects)["entries"])

    # -- reads ----------------------------------------------------------------------------

    def blob_path(self, key: str, version: int) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.blobs / digest[:2] / digest[2:4] / f"{digest[:32]}-{version}"

    def _decode(self, key: str, version: int, raw: bytes | memoryview) -> StoredValue:
        meta, offset = unpack_meta(key, memoryview(raw)[1:])
        if raw[0] & _INLINE:
            return StoredValue(meta, bytes(raw[1 + offset :]), None)
        return StoredValue(meta, None, self.blob_path(key, version))

    def get(self, key: str, version: int | None = None) -> StoredValue | None:
        """The given version of `key`, or the newest committed one; None when absent."""
        if version is not None:
            hot = self._hot.get(key, version)
            if hot is not None:
                return hot
            generation = self._hot.generation
        with self.env.begin(db=self._objects, buffers=True) as txn:
            if version is not None:
                raw = txn.get(_object_key(key, version))
                if raw is None:
                    return None
                stored = self._decode(key, version, raw)
                if stored.data is not None:
                    self._hot.keep(key, version, stored, len(stored.data), generation)
                return stored
            prefix = stored_key(key) + b"\x00"
            cursor = txn.cursor()
            if not cursor.set_range(prefix + b"\xff" * 8):
                if not cursor.last():
                    return None
            elif not cursor.prev():
                return None
            pending = txn.cursor(db=self._pending)
            while True:
                raw_key = bytes(cursor.key())
                if not raw_key.startswith(prefix):
                    return None
                # A longer object key with this prefix is another (long) key's: skip it.
                if len(raw_key) == len(prefix) + 8 and (
                    not pending.set_key(raw_key) or raw_key in self._finalizing
                ):
                    _, found = _split_object_key(raw_key)
                    return self._decode(key, found, cursor.value())
                if not cursor.prev():
                    return None

    def versions(self, key: str) -> list[int]:
        with self.env.begin() as txn:
            return self._versions_in(txn, key)

    def iter_values(self) -> Iterator[StoredValue]:
        with self.env.begin(db=self._objects, buffers=True) as txn:
            for raw_key, raw in txn.cursor():
                stored, version = _split_object_key(bytes(raw_key))
                yield self._decode(self._codec.decode(txn, stored), version, raw)

    def scan(self, after: bytes | None, limit: int) -> tuple[list[StoredValue], bytes | None]:
        """Up to `limit` stored values (every version) after the position `after`, and the
        position to continue from (None at the end)."""
        out: list[StoredValue] = []
        last: bytes | None = None
        with self.env.begin(db=self._objects, buffers=True) as txn:
            cursor = txn.cursor()
            found = cursor.set_range(after + b"\x00") if after else cursor.first()
            while found and len(out) < limit:
                last = bytes(cursor.key())
                stored, version = _split_object_key(last)
                out.append(self._decode(self._codec.decode(txn, stored), version, cursor.value()))
                found = cursor.next()
        return out, (last if found else None)

    def is_pending(self, key: str, version: int) -> bool:
        with self.env.begin(db=self._pending) as txn:
            return txn.get(_object_key(key, version)) is not None

    def tombstones(self) -> Iterator[tuple[str, int]]:
        """(key, version) of every delete this volume was told of."""
        with self.env.begin(db=self._tombs) as txn:
            for raw_key, raw in txn.cursor():
                yield self._codec.decode(txn, bytes(raw_key)), _BE64.unpack(raw)[0]

    def pending(self, older_than: float) -> list[tuple[str, int]]:
        """(key, version) of values stored before `older_than` whose commit is not settled."""
        cutoff = int(older_than * 1000)
        out: list[tuple[str, int]] = []
        with self.env.begin(db=self._pending) as txn:
            for raw_key, raw in txn.cursor():
                if _BE64.unpack(raw)[0] <= cutoff:
                    stored, version = _split_object_key(bytes(raw_key))
                    out.append((self._codec.decode(txn, stored), version))
        return out

    # -- writes ---------------------------------------------------------------------------

    def new_blob(self) -> BlobWriter:
        return BlobWriter(self.tmp)

    def _adjust_used(self, delta: int) -> None:
        self.used_bytes = max(0, self.used_bytes + delta)

    def _save_used(self, txn: lmdb.Transaction) -> None:
        """The bytes in use, written once a batch (in its transaction) when its ops changed
        them: one write instead of one per value."""
        if self.used_bytes != self._used_committed:
            txn.put(_USED, str(self.used_bytes).encode(), db=self._meta)

    def _drop(self, txn: lmdb.Transaction, key: str, version: int) -> None:
        """Remove one version, record and file. Runs inside a write batch."""
        okey = _object_key(key, version)
        raw = txn.get(okey, db=self._objects)
        if raw is None:
            return
        stored = self._decode(key, version, raw)
        txn.delete(okey, db=self._objects)
        txn.delete(okey, db=self._pending)
        self._changed.append((key, version))
        self._adjust_used(-stored.meta.size)
        if stored.path is not None:
            # The version is gone from the master's view already; if we crash before this
            # batch commits, the record points to a missing file and the next delete or
            # finalize of the key removes the record.
            stored.path.unlink(missing_ok=True)

    def _move_into_place(self, blob: BlobWriter, key: str, version: int) -> None:
        final = self.blob_path(key, version)
        if not final.parent.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            _fsync_dir(final.parent.parent)
            _fsync_dir(final.parent.parent.parent)
        os.replace(blob.path, final)
        _fsync_dir(final.parent)

    async def put(
        self,
        meta: ValueMeta,
        data: bytes | None = None,
        blob: BlobWriter | None = None,
        *,
        now: float | None = None,
    ) -> None:
        """Store one version durably, as pending. Give the bytes (`data`) or a finished `blob`.

        Order: the file is fsynced and renamed into place (and its directory fsynced) before
        the record is committed. A crash in between leaves a file with no record: it is
        unreachable and costs only its space (a later write of the same version replaces it).
        """
        if blob is not None:
            try:
                await asyncio.to_thread(self._move_into_place, blob, meta.key, meta.version)
            except OSError as exc:
                blob.abort()
                raise storage_error(exc) from exc
        await self._writer.write(self._put_op(meta, data, now or time.time()))

    def put_soon(self, meta: ValueMeta, data: bytes, now: float) -> asyncio.Future[None]:
        """`put` of a small value as a future (see `GroupCommitter.submit`)."""
        return self._writer.submit(self._put_op(meta, data, now))

    async def put_many(self, values: list[tuple[ValueMeta, bytes, float]]) -> None:
        """`put` of several small values (meta, bytes, time) in one operation of the batch."""
        if not values:
            return
        ops = [self._put_op(meta, data, now) for meta, data, now in values]

        def op(txn: lmdb.Transaction) -> None:
            for one in ops:
                one(txn)

        await self._writer.write(op)

    def _put_op(
        self, meta: ValueMeta, data: bytes | None, now: float
    ) -> Callable[[lmdb.Transaction], None]:
        okey = _object_key(meta.key, meta.version)
        header = bytes([_INLINE if data is not None else 0]) + pack_meta(meta)
        record = header + data if data is not None else header
        stamp = _BE64.pack(int(now * 1000))

        def op(txn: lmdb.Transaction) -> None:
            old = txn.get(okey, db=self._objects)
            if old is not None:
                self._adjust_used(-self._decode(meta.key, meta.version, old).meta.size)
                self._changed.append((meta.key, meta.version))
            txn.put(okey, record, db=self._objects)
            txn.put(okey, stamp, db=self._pending)
            self._codec.remember(txn, meta.key, okey[:-9])
            self._adjust_used(meta.size)

        return op

    def _after_batch(self, committed: bool) -> None:
        """Runs in the writer thread after each batch: forget the cached copies of versions
        the batch dropped or rewrote (before anyone waiting for the batch resumes), and the
        finalizes it made (committed, or lost with a failed batch: then the version reads as
        pending again, to be settled with the master); the bytes in use go back to the last
        committed count when the batch failed."""
        if committed:
            self._used_committed = self.used_bytes
        else:
            self.used_bytes = self._used_committed
        if self._changed:
            changed, self._changed = self._changed, []
            self._hot.forget(changed)
        if self._finalized:
            finalized, self._finalized = self._finalized, []
            self._finalizing.difference_update(finalized)

    def _finalize_op(self, key: str, version: int) -> Callable[[lmdb.Transaction], None]:
        def op(txn: lmdb.Transaction) -> None:
            okey = _object_key(key, version)
            if txn.get(okey, db=self._objects) is None:
                return
            txn.delete(okey, db=self._pending)
            for older in self._versions_in(txn, key):
                if older < version:
                    self._drop(txn, key, older)

        return op

    def _versions_in(self, txn: lmdb.Transaction, key: str) -> list[int]:
        prefix = stored_key(key) + b"\x00"
        found: list[int] = []
        cursor = txn.cursor(db=self._objects)
        if cursor.set_range(prefix):
            for item in cursor.iternext(values=False):
                raw_key = bytes(item)
                if not raw_key.startswith(prefix):
                    break
                if len(raw_key) == len(prefix) + 8:
                    found.append(_BE64.unpack(raw_key[-8:])[0])
        return found

    def finalize_later(self, key: str, version: int) -> None:
        """The master committed `version`: make it the only one. Rides the next batch (reads
        see it as committed at once); if it is lost in a crash the version stays pending and
        is settled with the master."""
        okey = _object_key(key, version)
        self._finalizing.add(okey)
        op = self._finalize_op(key, version)

        def finalize_and_forget(txn: lmdb.Transaction) -> None:
            self._finalized.append(okey)
            op(txn)

        self._writer.write_later(finalize_and_forget)

    async def finalize(self, key: str, version: int) -> None:
        await self._writer.write(self._finalize_op(key, version))

    async def discard(self, key: str, version: int) -> None:
        """Drop one version (its commit was refused or superseded)."""
        await self._writer.write(lambda txn: self._drop(txn, key, version))

    async def delete(self, key: str, upto_version: int) -> int:
        """Drop every version of `key` up to `upto_version` and remember the delete (a
        tombstone, so that an index rebuilt from volumes keeps it deleted); return how many
        versions were dropped."""

        def op(txn: lmdb.Transaction) -> int:
            doomed = [v for v in self._versions_in(txn, key) if v <= upto_version]
            for version in doomed:
                self._drop(txn, key, version)
            kb = stored_key(key)
            old = txn.get(kb, db=self._tombs)
            if old is None or _BE64.unpack(old)[0] < upto_version:
                txn.put(kb, _BE64.pack(upto_version), db=self._tombs)
                self._codec.remember(txn, key, kb)
            return len(doomed)

        return await self._writer.write(op)
