"""An acknowledged write survives kill -9 of the process that holds it.

One volume, so every value has exactly one copy: what reads back after the restart was on
that volume's disk when it answered 201 (or in the master's index, for the master's kill).
"""

from __future__ import annotations

import hashlib
import os

import pytest

INLINE = 1024  # kept in the volume's LMDB
FILE = 3 * 1024 * 1024 + 17  # over the 64 KiB inline limit: a value file


@pytest.mark.parametrize("size", [INLINE, FILE], ids=["inline-value", "file-value"])
def test_a_value_acknowledged_just_before_kill_9_of_its_volume_reads_back_after_restart(
    cluster_factory, size
):
    cluster = cluster_factory(volumes=1)
    values = {f"/durable/{size}/{i}": os.urandom(size) for i in range(3)}
    versions = {}
    for key, data in values.items():
        response = cluster.put(key, data)
        assert response.status_code == 201, response.text
        versions[key] = response.json()["data"]["version"]

    cluster.kill_volume(0)  # right after the last 201
    cluster.wait_live(0)
    cluster.restart_volume(0)

    for key, data in values.items():
        response = cluster.get(key)
        assert response.status_code == 200, (key, response.text)
        assert len(response.content) == size
        assert response.content == data
        assert response.headers["ETag"].strip('"') == hashlib.sha256(data).hexdigest()
        assert cluster.stat(key)["version"] == versions[key]


def test_an_overwrite_acknowledged_before_kill_9_reads_back_as_the_new_value(cluster_factory):
    cluster = cluster_factory(volumes=1)
    for data in (b"old" * 30000, b"new" * 30000, b"newest, small"):
        assert cluster.put("/durable/overwritten", data).status_code == 201
    assert cluster.put("/durable/small-then-large", b"small").status_code == 201
    large = os.urandom(200_000)
    assert cluster.put("/durable/small-then-large", large).status_code == 201

    cluster.kill_volume(0)
    cluster.wait_live(0)
    cluster.restart_volume(0)

    assert cluster.get("/durable/overwritten").content == b"newest, small"
    assert cluster.get("/durable/small-then-large").content == large
