"""The master's key index, read from an extension worker process.

The worker opens the master's LMDB environment read-only (LMDB is built for many reader
processes beside one writer; each read transaction sees a consistent snapshot), so `search`
reads key metadata without a round trip through the master's event loop and without reading
any value. The layout is `pulzar.storage.index`'s: sub-database `keys`, key -> KeyRecord.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import lmdb

from pulzar.storage.records import ValueMeta, unpack_meta

KEYS_DB = b"keys"  # as opened by pulzar.storage.index.Index

_views: dict[str, IndexView] = {}


class IndexView:
    def __init__(self, path: Path, map_size_gb: int) -> None:
        if not (path / "data.mdb").exists():
            raise FileNotFoundError(f"no key index at {path}")
        self.env = lmdb.open(
            str(path),
            readonly=True,
            lock=True,
            subdir=True,
            max_dbs=8,
            map_size=map_size_gb * 1024**3,
            readahead=False,
        )
        # Free the reader slots of workers that were killed in a read transaction.
        self.env.reader_check()
        self._keys = self.env.open_db(KEYS_DB, create=False)

    def scan(self, prefix: str = "", contains: str = "") -> Generator[ValueMeta, None, None]:
        """Metadata of every key starting with `prefix` and containing `contains`, in key
        order. The substring test runs on the raw key, before any record is decoded."""
        start = prefix.encode("utf-8")
        needle = contains.encode("utf-8")
        with self.env.begin(db=self._keys, buffers=True) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(start):
                return
            for raw_key, raw in cursor:
                key = bytes(raw_key)
                if not key.startswith(start):
                    return
                if needle and needle not in key:
                    continue
                meta, _ = unpack_meta(key.decode("utf-8"), raw)
                yield meta


def open_index(path: str, map_size_gb: int) -> IndexView:
    """The read-only view of the index at `path`, opened once per process."""
    view = _views.get(path)
    if view is None:
        view = _views[path] = IndexView(Path(path), map_size_gb)
    return view
