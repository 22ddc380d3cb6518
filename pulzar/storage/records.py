"""Binary layouts of the records kept in LMDB (compact: the index must stay small per key)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Any

_DEFAULT_TYPE = "application/octet-stream"
#: The largest version (and size) a record holds: unsigned 64-bit.
MAX_U64 = 2**64 - 1


def _pack_type(content_type: str) -> bytes:
    return b"" if content_type == _DEFAULT_TYPE else content_type.encode("utf-8")


def _unpack_type(raw: bytes) -> str:
    return raw.decode("utf-8") if raw else _DEFAULT_TYPE


@dataclass(frozen=True, slots=True)
class ValueMeta:
    """What every stored value carries about itself, on the master and on each volume.

    `created` is when the key was first written (kept over overwrites), `modified` when this
    version was; both are epoch seconds, UTC. `expires` is None for a value that never expires.
    `checksum` is the SHA-256 of the bytes (its hex form is the ETag).
    """

    key: str
    version: int
    size: int
    checksum: bytes
    content_type: str = _DEFAULT_TYPE
    created: float = 0.0
    modified: float = 0.0
    expires: float | None = None

    @property
    def etag(self) -> str:
        return self.checksum.hex()

    def is_expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now

    def with_version(self, version: int) -> ValueMeta:
        return replace(self, version=version)

    def to_json(self) -> dict[str, Any]:
        """As JSON between the processes (a commit, a volume's list of its values)."""
        return {
            "key": self.key,
            "version": self.version,
            "size": self.size,
            "checksum": self.checksum.hex(),
            "content_type": self.content_type,
            "created": self.created,
            "modified": self.modified,
            "expires": self.expires,
        }

    @classmethod
    def from_json(cls, entry: Any) -> ValueMeta:
        """`to_json` read back; KeyError, TypeError or ValueError when it is not one (what
        `_META` cannot hold included: a checksum that is not a SHA-256, numbers out of range)."""
        if not isinstance(entry, dict):
            raise TypeError("a value's metadata must be a JSON object")
        version, size = int(entry["version"]), int(entry["size"])
        if not (0 <= version <= MAX_U64 and 0 <= size <= MAX_U64):
            raise ValueError("version and size must be unsigned 64-bit integers")
        checksum = bytes.fromhex(entry["checksum"])
        if len(checksum) != 32:
            raise ValueError("checksum must be a SHA-256 (64 hex digits)")
        expires = entry.get("expires")
        return cls(
            key=str(entry["key"]),
            version=version,
            size=size,
            checksum=checksum,
            content_type=str(entry["content_type"]),
            created=float(entry["created"]),
            modified=float(entry["modified"]),
            expires=None if expires is None else float(expires),
        )


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key in the master index: the current version's metadata and the nodes holding it."""

    meta: ValueMeta
    nodes: tuple[str, ...]
    #: Copies the key should have (R, as asked when it was written).
    copies: int = 1

    def with_nodes(self, nodes: tuple[str, ...]) -> KeyRecord:
        return replace(self, nodes=nodes)


# version, size, created, modified, expires (0 = never), checksum, len(content type)
_META = struct.Struct(">QQddd32sH")


def pack_meta(meta: ValueMeta) -> bytes:
    ctype = _pack_type(meta.content_type)
    return (
        _META.pack(
            meta.version,
            meta.size,
            meta.created,
            meta.modified,
            meta.expires or 0.0,
            meta.checksum,
            len(ctype),
        )
        + ctype
    )


def unpack_meta(key: str, raw: bytes | memoryview) -> tuple[ValueMeta, int]:
    """The metadata at the start of `raw` and the offset where what follows begins."""
    version, size, created, modified, expires, checksum, ctype_len = _META.unpack_from(raw)
    start = _META.size
    ctype = _unpack_type(bytes(raw[start : start + ctype_len]))
    meta = ValueMeta(
        key=key,
        version=version,
        size=size,
        checksum=bytes(checksum),
        content_type=ctype,
        created=created,
        modified=modified,
        expires=expires or None,
    )
    return meta, start + ctype_len


def pack_key_record(record: KeyRecord) -> bytes:
    nodes = "\x00".join(record.nodes).encode("ascii")
    return pack_meta(record.meta) + bytes([record.copies]) + nodes


def unpack_key_record(key: str, raw: bytes | memoryview) -> KeyRecord:
    meta, offset = unpack_meta(key, raw)
    copies = raw[offset]
    tail = bytes(raw[offset + 1 :]).decode("ascii")
    return KeyRecord(meta=meta, nodes=tuple(tail.split("\x00")) if tail else (), copies=copies)
