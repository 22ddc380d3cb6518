"""How keys become LMDB keys.

LMDB keys are at most 511 bytes; Pulzar keys may have 1024. A key up to `LIMIT` bytes is stored
as its UTF-8 bytes. A longer one is stored as its first `LIMIT` bytes, a NUL and 16 bytes of its
SHA-256: NUL never occurs in a key, so the two forms cannot collide, and a prefix of up to
`LIMIT` bytes still selects exactly the keys that start with it. The full text of a long key is
kept in the `longkeys` sub-database.

Listings follow the stored order: the same as the keys' own order, except that keys sharing
their first `LIMIT` bytes come in hash order after them.
"""

from __future__ import annotations

import hashlib

import lmdb

LIMIT = 400


def stored_key(key: str) -> bytes:
    raw = key.encode("utf-8")
    if len(raw) <= LIMIT:
        return raw
    return raw[:LIMIT] + b"\x00" + hashlib.sha256(raw).digest()[:16]


def scan_prefix(prefix: str) -> tuple[bytes, bool]:
    """The stored prefix to scan for `prefix`, and whether the full keys must be checked too
    (a prefix longer than `LIMIT`)."""
    raw = prefix.encode("utf-8")
    return (raw, False) if len(raw) <= LIMIT else (raw[:LIMIT], True)


class KeyCodec:
    def __init__(self, env: lmdb.Environment) -> None:
        self._db = env.open_db(b"longkeys")

    def remember(self, txn: lmdb.Transaction, key: str, stored: bytes) -> None:
        """Record the full text of a long key (call in the transaction that writes it)."""
        if len(stored) > LIMIT:
            txn.put(stored, key.encode("utf-8"), db=self._db)

    def decode(self, txn: lmdb.Transaction, stored: bytes) -> str:
        if len(stored) <= LIMIT:
            return stored.decode("utf-8")
        full = txn.get(stored, db=self._db)
        if full is None:  # pragma: no cover - written in the same transaction as the key
            raise KeyError(f"long key without its text: {stored[:40]!r}...")
        return bytes(full).decode("utf-8")
