"""The fast routes of the master and the volume (answered from the socket) decline what their
aiohttp routes would answer otherwise, and the aiohttp routes answer those requests with a
clear 400 rather than an error or a different value. The fast answers themselves run through
the real fast path in tests/integration; here each route is asked directly."""

from __future__ import annotations

import time

from yarl import URL

from pulzar.master.app import SERVICE as MASTER
from pulzar.master.app import fast_get_key as master_get
from pulzar.master.app import fast_put_key
from pulzar.volume.app import SERVICE as VOLUME
from pulzar.volume.app import fast_add_key, fast_get_key

from conftest import Cluster

HEADERS = {"host": "x"}


async def _written(cluster: Cluster, key: str, data: bytes) -> tuple[str, int]:
    """A value written through the master: the volume URL it was written to, its version."""
    status, body = await cluster.put(key, data)
    assert status == 201, body
    return cluster.volumes[0].url, int(body["data"]["version"])


async def test_a_volume_read_with_a_version_past_64_bits_is_a_400_and_not_a_fast_answer(
    cluster: Cluster,
) -> None:
    volume, version = await _written(cluster, "/big-v", b"value")
    route = fast_get_key(cluster.volumes[0].app[VOLUME])
    assert route.answer("/get_key/big-v", f"v={version}", HEADERS, time.time()) is not None
    for v in (str(2**64), "9" * 5000):
        assert route.answer("/get_key/big-v", f"v={v}", HEADERS, time.time()) is None
        async with cluster.http.get(URL(f"{volume}/get_key/big-v?v={v}", encoded=True)) as resp:
            assert resp.status == 400, await resp.text()
            assert (await resp.json())["status"] == "ko"


async def test_a_query_naming_a_parameter_twice_is_left_to_aiohttp_which_reads_the_first(
    cluster: Cluster,
) -> None:
    volume, version = await _written(cluster, "/twice", b"value")
    route = fast_get_key(cluster.volumes[0].app[VOLUME])
    twice = f"v={version + 1000}&v={version}"
    assert route.answer("/get_key/twice", twice, HEADERS, time.time()) is None
    url = URL(f"{volume}/get_key/twice?{twice}", encoded=True)
    async with cluster.http.get(url, allow_redirects=False) as resp:
        assert resp.status == 307  # the first v names a version this volume lacks

    location = str(await _ticket_location(cluster, "/twice-put"))
    ticket = URL(location).query["t"]
    accept = fast_add_key(cluster.volumes[0].app[VOLUME]).accept
    assert accept("/add_key/twice-put", f"t={ticket}", HEADERS, time.time()) is not None
    assert accept("/add_key/twice-put", f"t=bogus&t={ticket}", HEADERS, time.time()) is None
    put = URL(f"{volume}/add_key/twice-put?t=bogus&t={ticket}", encoded=True)
    async with cluster.http.put(put, data=b"x") as resp:
        assert resp.status == 403, await resp.text()
    status, _ = await cluster.stat("/twice-put")
    assert status == 404


async def _ticket_location(cluster: Cluster, key: str) -> str:
    async with cluster.http.put(cluster.url(f"/add_key{key}"), allow_redirects=False) as resp:
        assert resp.status == 307
        return resp.headers["Location"]


async def test_a_put_of_unknown_length_is_left_to_aiohttp_which_closes_after_the_307(
    cluster: Cluster,
) -> None:
    route = fast_put_key(cluster.master.app[MASTER])  # type: ignore[union-attr]
    known = {**HEADERS, "content-length": "3"}
    assert route.answer("/add_key/k", "", known, time.time()) is not None
    assert route.answer("/add_key/k", "", HEADERS, time.time()) is None
    raw = await cluster.raw()
    await raw.send(b"PUT /add_key/k HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await raw.read_response()
    assert answer.status == 307 and answer.headers.get("connection", "").lower() == "close"
    await raw.close()


async def test_a_content_type_that_is_not_utf8_is_a_400_and_nothing_is_stored(
    cluster: Cluster,
) -> None:
    location = URL(await _ticket_location(cluster, "/typed"))
    raw = await cluster.raw(f"http://{location.host}:{location.port}")
    head = f"PUT {location.raw_path_qs} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n".encode()
    await raw.send(head + b"Content-Type: text/plain; name=\xe9\r\n\r\nhello")
    answer = await raw.read_response()
    assert answer.status == 400 and b"UTF-8" in answer.body
    await raw.close()
    status, _ = await cluster.stat("/typed")
    assert status == 404


async def test_a_request_id_that_cannot_travel_as_it_is_is_replaced(cluster: Cluster) -> None:
    await _written(cluster, "/rid", b"value")
    route = master_get(cluster.master.app[MASTER])  # type: ignore[union-attr]
    for given, kept in (("abc-123_x.y", True), ("a b", False), ("a\tb", False), ("x&t=1", False)):
        async with cluster.http.get(
            cluster.url("/get_key/rid"), headers={"X-Request-Id": given}, allow_redirects=False
        ) as resp:
            assert resp.status == 307
            rid = URL(resp.headers["Location"]).query["rid"]
            assert (rid == given) is kept and resp.headers["X-Request-Id"] == rid
        fast = route.answer("/get_key/rid", "", {**HEADERS, "x-request-id": given}, time.time())
        assert fast is not None and (fast[2] == given) is kept
