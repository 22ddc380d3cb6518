"""A 1 GiB value through the redirect, with every server process's memory watched.

The upload is `curl -X PUT -L -T FILE` through a byte-counting proxy in front of the master:
curl sends `Expect: 100-continue` for a body this large, and the master must answer its 307
without taking the body, so that the gigabyte crosses the network once, to the volume.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx

from pulzar.client import Client

GIB = 1024**3
CHUNK = 1024 * 1024
RSS_LIMIT = 150 * 1024 * 1024


def test_a_1_gib_value_goes_up_and_down_through_the_redirect_in_bounded_memory(
    cluster_factory, counting_proxy, rss_sampler, curl, tmp_path
):
    cluster = cluster_factory(volumes=2, loaded=True)
    servers = [p.pid for p in cluster.procs()]
    proxy = counting_proxy(cluster.master_port)
    source = tmp_path / "one-gib.bin"
    digest = hashlib.sha256()
    try:
        with open(source, "wb") as out:
            for _ in range(GIB // CHUNK):
                chunk = os.urandom(CHUNK)
                digest.update(chunk)
                out.write(chunk)
        expected = digest.hexdigest()

        with rss_sampler(servers) as upload_rss:
            started = time.monotonic()
            result = curl(
                [
                    "-v",
                    "-X",
                    "PUT",
                    "-L",
                    "-T",
                    str(source),
                    f"http://127.0.0.1:{proxy.port}/add_key/big/one-gib.bin",
                ],
                timeout=300,
            )
            upload_took = time.monotonic() - started
        source.unlink()
        assert result.status == 201, result
        assert "> Expect: 100-continue" in result.stderr  # curl asked the master first
        assert upload_took < 180
        # The master got the request line and headers, never the body.
        assert proxy.connections == 1
        assert 0 < proxy.sent_upstream < 64 * 1024, proxy.sent_upstream
        meta = cluster.stat("/big/one-gib.bin")
        assert meta["size"] == GIB
        assert meta["etag"] == expected

        received = hashlib.sha256()
        size = 0
        with rss_sampler(servers) as download_rss, Client(cluster.master_url) as client:
            started = time.monotonic()
            with client.get_stream("/big/one-gib.bin") as chunks:
                for chunk in chunks:
                    received.update(chunk)
                    size += len(chunk)
            download_took = time.monotonic() - started
        assert size == GIB
        assert received.hexdigest() == expected

        for sampler in (upload_rss, download_rss):
            assert sampler.samples > 10
            for pid, peak in sampler.peak.items():
                assert 0 < peak < RSS_LIMIT, f"pid {pid} reached {peak / 2**20:.0f} MiB RSS"
        print(
            f"1 GiB up in {upload_took:.1f} s, down in {download_took:.1f} s; peak RSS MiB: "
            + ", ".join(
                f"{max(u, d) / 2**20:.0f}"
                for u, d in zip(upload_rss.peak.values(), download_rss.peak.values(), strict=True)
            )
        )
        assert cluster.http.delete(cluster.url("delete_key", "/big/one-gib.bin")).status_code == 200
    finally:
        source.unlink(missing_ok=True)


def test_a_large_upload_whose_replica_hangs_goes_to_a_spare_instead_of_waiting(cluster_factory):
    """The body streams to the replica while it arrives; a replica that stops taking it (here
    SIGSTOP, as a hung disk would) is given up after the replica timeout, and the copy goes to
    the spare the ticket names."""
    cluster = cluster_factory(
        volumes=3,
        # The stopped volume must still be a live candidate when the ticket is made.
        settings={"PULZAR_TIMERS_REPLICA_TIMEOUT": "1", "PULZAR_TIMERS_DEAD_AFTER": "30"},
    )
    key, size = "/big/replica-hangs", 48 * CHUNK
    data = os.urandom(size)
    # Where the master would redirect the PUT (`get_node` gives the same URL and ticket).
    planned = cluster.http.get(cluster.url("get_node", key), params={"size": size})
    location = planned.json()["data"]["node"]
    token = parse_qs(urlsplit(location).query)["t"][0].split(".")[0]
    urls = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["u"]
    by_url = {volume.url: volume for volume in cluster.volumes}
    primary, replica, spare = (by_url[url] for url in urls[:3])

    def body() -> Iterator[bytes]:
        for offset in range(0, size, CHUNK):
            if offset == 4 * CHUNK:
                replica.proc.send(signal.SIGSTOP)
            yield data[offset : offset + CHUNK]

    try:
        started = time.monotonic()
        response = httpx.put(
            location, content=body(), headers={"Content-Length": str(size)}, timeout=60
        )
        took = time.monotonic() - started
    finally:
        replica.proc.send(signal.SIGCONT)
    assert response.status_code == 201, response.text
    assert took < 20
    holders = sorted(r["id"] for r in cluster.stat(key)["replicas"])
    assert holders == sorted([primary.node_id, spare.node_id])
    assert cluster.get(key).content == data


def test_a_slow_upload_reaches_its_replica_before_the_replica_stops_waiting(cluster_factory):
    """A client slower than a batch per body timeout (but never silent that long) still gets
    both copies: the replica is sent what came so far, not only whole batches."""
    cluster = cluster_factory(volumes=2, settings={"PULZAR_SERVER_BODY_TIMEOUT": "1"})
    key, piece, pieces = "/big/slow", 256 * 1024, 12
    data = os.urandom(piece * pieces)
    planned = cluster.http.get(cluster.url("get_node", key), params={"size": len(data)})
    location = planned.json()["data"]["node"]

    def body() -> Iterator[bytes]:
        for i in range(pieces):
            time.sleep(0.4)  # the client's pace: 640 KiB/s, a 1 MiB batch every 1.6 s
            yield data[i * piece : (i + 1) * piece]

    response = httpx.put(
        location, content=body(), headers={"Content-Length": str(len(data))}, timeout=30
    )
    assert response.status_code == 201, response.text
    assert len(cluster.stat(key)["replicas"]) == 2
    assert cluster.get(key).content == data
