"""The body of a batch of small replicas: what is packed reads back, and a body that does
not add up is refused as a bad request."""

from __future__ import annotations

import pytest

from pulzar.core.errors import BadRequest
from pulzar.core.keys import MAX_KEY_BYTES
from pulzar.volume.batching import (
    REPLICA_BATCH_MAX,
    ReplicaEntry,
    pack_replicas,
    replicas_per_batch,
    unpack_replicas,
)

ENTRIES = [
    ReplicaEntry("/a", "t1", 1.5, None, "text/plain", b"hello"),
    ReplicaEntry("/b\n\u00e9", "t2", 2.25, 99.0, "application/octet-stream", b""),
    ReplicaEntry("/c", "t3", 3.0, None, "image/png", bytes(range(256)) * 300),
]


def test_a_packed_batch_reads_back_entry_for_entry() -> None:
    assert unpack_replicas(pack_replicas(ENTRIES)) == ENTRIES


def test_an_empty_batch_reads_back_empty() -> None:
    assert unpack_replicas(pack_replicas([])) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x00",
        b"\x00\x00\x00\x05[1,2",
        b"\x00\x00\x00\x02{}",
        pack_replicas(ENTRIES)[:-1],
        pack_replicas(ENTRIES) + b"x",
        b'\x00\x00\x00\x1c[["/a","t",1,null,"x",-1]]xyz',
    ],
)
def test_a_body_that_does_not_add_up_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        unpack_replicas(body)


@pytest.mark.parametrize("inline_max", [0, 1024, 64 * 1024, 256 * 1024, 4 * 1024 * 1024])
def test_a_full_batch_of_the_largest_inline_values_fits_what_a_volume_takes(
    inline_max: int,
) -> None:
    count = replicas_per_batch(inline_max)
    key = "/" + "k" * (MAX_KEY_BYTES - 1)
    entries = [
        ReplicaEntry(key, "t" * 4096, 1.5, 2.5, "x/" + "y" * 200, b"v" * inline_max)
        for _ in range(count)
    ]
    assert 1 <= count <= 64
    assert count == 64 or inline_max > 64 * 1024
    assert len(pack_replicas(entries)) <= REPLICA_BATCH_MAX
