"""Opening an LMDB environment: once per process, with a recorded format version."""

from __future__ import annotations

import errno
from pathlib import Path

import lmdb

from pulzar.core.errors import ConfigError, InsufficientStorage

FORMAT_KEY = b"format"


def open_env(path: Path, *, map_size_gb: int, max_dbs: int = 16) -> lmdb.Environment:
    """Open (creating) the environment in directory `path`.

    The map is address space, not disk: only pages in use take room, so a large map never has
    to grow at run time (a full map gives 507, see `storage_error`).
    """
    path.mkdir(parents=True, exist_ok=True)
    return lmdb.open(
        str(path),
        map_size=map_size_gb * 1024**3,
        max_dbs=max_dbs,
        subdir=True,
        sync=True,
        metasync=True,
        readahead=False,
        max_readers=512,
        lock=True,
    )


def check_format(env: lmdb.Environment, meta: lmdb._Database, current: int, what: str) -> None:
    """Record `current` in a new store; refuse a store written by a newer Pulzar."""
    with env.begin(write=True, db=meta) as txn:
        raw = txn.get(FORMAT_KEY)
        if raw is None:
            txn.put(FORMAT_KEY, str(current).encode())
            return
    found = int(raw)
    if found > current:
        raise ConfigError(
            f"{what} was written by a newer Pulzar (format {found}, this one knows up to "
            f"{current}): upgrade Pulzar to open it"
        )


def storage_error(exc: BaseException) -> Exception:
    """Translate a full map or disk into the 507 the API promises; pass others through."""
    if isinstance(exc, lmdb.MapFullError):
        return InsufficientStorage("storage map is full")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage("disk is full")
    if isinstance(exc, lmdb.Error) and "No space left" in str(exc):
        return InsufficientStorage("disk is full")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))
