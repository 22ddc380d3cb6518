"""A 1 GiB value through the redirect, with every server process's memory watched.

The upload is `curl -X PUT -L -T FILE` through a byte-counting proxy in front of the master:
curl sends `Expect: 100-continue` for a body this large, and the master must answer its 307
without taking the body, so that the gigabyte crosses the network once, to the volume.
"""

from __future__ import annotations

import hashlib
import os
import time

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
