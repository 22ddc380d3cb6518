"""Bad input and missing credentials: a clear status, the `{"data","status":"ko","msg"}`
envelope, never a 500 or an empty reply, and nothing stored changed."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import pytest
from yarl import URL

from pulzar.core.tickets import SIGNATURE_HEADER, WriteTicket, sign_request, sign_ticket
from pulzar.core.tickets import verify_ticket as _verify_ticket

if TYPE_CHECKING:
    from conftest import Cluster, ClusterFactory

MiB = 1024 * 1024


async def call(
    cluster: Cluster,
    method: str,
    url: str | URL,
    *,
    data: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    """One request, redirects not followed; the status, the JSON body and the response."""
    if isinstance(url, str):
        url = URL(url, encoded=True)
    async with cluster.http.request(
        method, url, data=data, headers=headers, allow_redirects=False
    ) as resp:
        assert resp.headers.get("Content-Type", "").startswith("application/json"), (
            f"{method} {url}: {resp.status} is not a JSON envelope"
        )
        return resp.status, await resp.json(), resp


def assert_ko(status: int, body: dict[str, Any], expected: int) -> None:
    assert status == expected, body
    assert set(body) == {"data", "status", "msg"}
    assert body["status"] == "ko"
    assert isinstance(body["msg"], str) and body["msg"]


async def write_ticket(cluster: Cluster, key: str, **headers: str) -> str:
    """The volume URL (with its ticket) that the master's 307 gives for a PUT of `key`."""
    async with cluster.http.put(
        cluster.url(f"/add_key{key}"), data=b"", headers=headers, allow_redirects=False
    ) as resp:
        assert resp.status == 307, await resp.text()
        return resp.headers["Location"]


def verify_ticket(cluster: Cluster, location: str) -> WriteTicket:
    return _verify_ticket(cluster.secret, URL(location).query["t"], time.time())


def with_ticket(location: str, ticket: str) -> str:
    return str(URL(location).update_query(t=ticket))


@pytest.fixture
async def seeded(cluster: Cluster) -> Cluster:
    """A cluster that holds one key, so that "nothing changed" has something to keep."""
    status, _ = await cluster.put("/seed", b"seed")
    assert status == 201
    return cluster


# -- keys -------------------------------------------------------------------------------

BAD_KEYS = {
    "empty": "/",
    "empty-after-a-slash": "//",
    "dot-segment": "/a/./b",
    "dotdot-segment": "/a/../b",
    "only-dotdot": "/..",
    "encoded-dotdot": "/%2e%2e",
    "encoded-dotdot-upper": "/a/%2E%2E/b",
    "encoded-dot": "/a/%2e",
    "encoded-slash-dotdot": "/a%2F..%2Fb",
    "empty-segment": "/a//b",
    "encoded-empty-segment": "/a%2F%2Fb",
    "trailing-slash": "/a/",
    "nul": "/a%00b",
    "newline": "/a%0ab",
    "carriage-return": "/a%0db",
    "tab": "/a%09b",
    "del": "/a%7fb",
    "c1-control": "/a%c2%85b",
    "over-1024-bytes": "/" + "k" * 1024,
    "over-1024-bytes-utf8": "/" + "%c3%a9" * 512,
    "invalid-utf8": "/%ff",
    "overlong-utf8-dotdot": "/%c0%ae%c0%ae",
}

MASTER_KEY_ROUTES = [
    ("PUT", "/add_key"),
    ("PUT", "/get_node"),
    ("GET", "/get_node"),
    ("GET", "/get_key"),
    ("DELETE", "/delete_key"),
    ("GET", "/stat_key"),
]


@pytest.mark.parametrize("raw", BAD_KEYS.values(), ids=BAD_KEYS.keys())
async def test_bad_key_gives_400_on_every_key_route_and_changes_nothing(
    seeded: Cluster, raw: str
) -> None:
    cluster = seeded
    before = cluster.snapshot()
    for method, route in MASTER_KEY_ROUTES:
        status, body, _ = await call(
            cluster, method, cluster.url(route + raw), data=b"x" if method == "PUT" else None
        )
        assert_ko(status, body, 400)
    # The volumes apply the same rules, a valid ticket for another key notwithstanding.
    location = URL(await write_ticket(cluster, "/valid"))
    volume = cluster.volumes[0].url
    status, body, _ = await call(
        cluster, "PUT", f"{volume}/add_key{raw}?t={location.query['t']}", data=b"x"
    )
    assert_ko(status, body, 400)
    status, body, _ = await call(cluster, "GET", f"{volume}/get_key{raw}")
    assert_ko(status, body, 400)
    assert cluster.snapshot() == before


@pytest.mark.parametrize("length", [400, 401, 500, 1024])
async def test_key_of_up_to_1024_bytes_is_accepted(cluster: Cluster, length: int) -> None:
    key = "/" + "k" * (length - 1)
    status, _ = await cluster.put(key, b"longest")
    assert status == 201
    status, got, _ = await cluster.get(key)
    assert (status, got) == (200, b"longest")
    _, listed = await cluster.list_keys("/" + "k" * (length - 2))
    assert key in [entry["key"] for entry in listed["data"]["keys"]]


@pytest.mark.parametrize("raw", ["%ff", "a%00", "a%0a"], ids=["invalid-utf8", "nul", "newline"])
async def test_bad_listing_prefix_gives_400(seeded: Cluster, raw: str) -> None:
    status, body, _ = await call(seeded, "GET", seeded.url(f"/list_keys/{raw}"))
    assert_ko(status, body, 400)


# -- parameters -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", "36501", "1e400"])
async def test_bad_temporal_gives_400_and_changes_nothing(seeded: Cluster, value: str) -> None:
    before = seeded.snapshot()
    for method, route in [("PUT", "/add_key/t"), ("GET", "/get_node/t"), ("PUT", "/get_node/t")]:
        status, body, _ = await call(
            seeded, method, seeded.url(f"{route}?temporal={value}"), data=b"x"
        )
        assert_ko(status, body, 400)
    assert seeded.snapshot() == before


@pytest.mark.parametrize("value", ["0", "10001", "-5", "abc"])
async def test_list_limit_out_of_range_gives_400(seeded: Cluster, value: str) -> None:
    status, body, _ = await call(seeded, "GET", seeded.url(f"/list_keys/?limit={value}"))
    assert_ko(status, body, 400)
    assert value in body["msg"]


@pytest.mark.parametrize("value", ["0", "17", "two"])
async def test_bad_replicas_gives_400(seeded: Cluster, value: str) -> None:
    before = seeded.snapshot()
    status, body, _ = await call(seeded, "PUT", seeded.url(f"/add_key/r?replicas={value}"))
    assert_ko(status, body, 400)
    assert seeded.snapshot() == before


@pytest.mark.parametrize(
    "headers",
    [
        {"If-Match": "not-an-etag"},
        {"If-None-Match": '"abc"'},
        {"If-None-Match": "*", "If-Match": "1"},
    ],
    ids=["if-match-garbage", "if-none-match-not-star", "both"],
)
async def test_bad_write_condition_gives_400(seeded: Cluster, headers: dict[str, str]) -> None:
    before = seeded.snapshot()
    status, body, _ = await call(
        seeded, "PUT", seeded.url("/add_key/seed"), data=b"x", headers=headers
    )
    assert_ko(status, body, 400)
    assert seeded.snapshot() == before


# -- routes and methods -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/get_key"),
        ("GET", "/admin/nothing"),
        ("POST", "/internal/nothing"),
        ("GET", "/"),
    ],
)
async def test_unknown_route_gives_404(seeded: Cluster, method: str, path: str) -> None:
    for base in (seeded.master_url, seeded.volumes[0].url):
        status, body, _ = await call(seeded, method, base + path)
        assert_ko(status, body, 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/get_key/seed", "GET"),
        ("GET", "/add_key/seed", "PUT"),
        ("PUT", "/list_keys/", "GET"),
        ("DELETE", "/stat_key/seed", "GET"),
        ("PATCH", "/delete_key/seed", "DELETE"),
        ("POST", "/admin/status", "GET"),
    ],
)
async def test_wrong_method_gives_405_with_allow(
    seeded: Cluster, method: str, path: str, allowed: str
) -> None:
    before = seeded.snapshot()
    status, body, resp = await call(seeded, method, seeded.url(path))
    assert_ko(status, body, 405)
    assert allowed in resp.headers["Allow"]
    assert seeded.snapshot() == before


# -- sizes and space --------------------------------------------------------------------

ONE_MIB_LIMIT = {("general", "maxsize"): 1}


async def test_value_over_maxsize_gives_413_at_the_master(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(master=ONE_MIB_LIMIT, volume=ONE_MIB_LIMIT)
    status, body, _ = await call(
        cluster, "PUT", cluster.url("/add_key/big"), data=io.BytesIO(b"x" * (MiB + 1))
    )
    assert_ko(status, body, 413)
    assert cluster.snapshot() == ([], [[]])


async def test_master_refuses_an_oversized_put_before_its_body_is_sent(
    make_cluster: ClusterFactory,
) -> None:
    # What `curl -T big.file` does: headers with Expect, then wait for the answer.
    cluster = await make_cluster(master=ONE_MIB_LIMIT, volume=ONE_MIB_LIMIT)
    conn = await cluster.raw()
    try:
        await conn.send(
            f"PUT /add_key/big HTTP/1.1\r\nHost: {URL(cluster.master_url).raw_authority}\r\n"
            f"Content-Length: {2 * MiB}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        resp = await conn.read_response()
    finally:
        await conn.close()
    assert_ko(resp.status, orjson.loads(resp.body), 413)
    status, body, _ = await call(cluster, "GET", cluster.url(f"/get_node/big?size={2 * MiB}"))
    assert_ko(status, body, 413)
    assert cluster.snapshot() == ([], [[]])


async def test_value_of_exactly_maxsize_is_accepted(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(master=ONE_MIB_LIMIT, volume=ONE_MIB_LIMIT)
    data = os.urandom(MiB)
    async with cluster.http.put(
        cluster.url("/add_key/max"), data=io.BytesIO(data), allow_redirects=False
    ) as resp:
        assert resp.status == 307
        location = resp.headers["Location"]
    async with cluster.http.put(location, data=io.BytesIO(data)) as resp:
        assert resp.status == 201
    status, got, _ = await cluster.get("/max")
    assert status == 200 and got == data


async def _chunks(size: int, chunk: int = 64 * 1024) -> Any:
    for start in range(0, size, chunk):
        yield b"x" * min(chunk, size - start)
        await asyncio.sleep(0)


@pytest.mark.parametrize("how", ["chunked", "content-length"])
async def test_value_over_maxsize_sent_to_the_volume_gives_413(
    make_cluster: ClusterFactory, how: str
) -> None:
    # The master cannot see the size of a chunked upload: the volume counts the bytes.
    cluster = await make_cluster(master=ONE_MIB_LIMIT, volume=ONE_MIB_LIMIT)
    location = await write_ticket(cluster, "/big")
    data = _chunks(2 * MiB) if how == "chunked" else io.BytesIO(b"x" * (2 * MiB))
    status, body, _ = await call(cluster, "PUT", location, data=data)
    assert_ko(status, body, 413)
    assert cluster.snapshot() == ([], [[]])
    assert list(cluster.store().tmp.iterdir()) == []
    assert cluster.store().used_bytes == 0


SMALL_VOLUME = {("volume", "max_bytes"): 300_000}


async def test_value_over_the_volume_capacity_gives_507(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(volume=SMALL_VOLUME)
    status, body, _ = await call(
        cluster, "PUT", cluster.url("/add_key/huge"), data=os.urandom(400_000)
    )
    assert_ko(status, body, 507)
    assert cluster.snapshot() == ([], [[]])


@pytest.mark.parametrize("how", ["chunked", "content-length"])
async def test_upload_over_the_volume_capacity_sent_to_the_volume_gives_507(
    make_cluster: ClusterFactory, how: str
) -> None:
    cluster = await make_cluster(volume=SMALL_VOLUME)
    location = await write_ticket(cluster, "/huge")
    data = _chunks(400_000) if how == "chunked" else os.urandom(400_000)
    status, body, _ = await call(cluster, "PUT", location, data=data)
    assert_ko(status, body, 507)
    assert cluster.snapshot() == ([], [[]])
    assert list(cluster.store().tmp.iterdir()) == []
    assert cluster.store().used_bytes == 0


async def test_full_volume_refuses_the_next_value_with_507(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(volume=SMALL_VOLUME)
    status, _ = await cluster.put("/first", os.urandom(200_000))
    assert status == 201
    before = cluster.snapshot()
    status, body = await cluster.put("/second", os.urandom(200_000))
    assert_ko(status, body, 507)
    assert cluster.snapshot() == before
    status, _, _ = await cluster.get("/first")
    assert status == 200


# -- no live volume ---------------------------------------------------------------------


async def test_write_without_any_volume_gives_503(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(volumes=0)
    for method, route in [("PUT", "/add_key/k"), ("GET", "/get_node/k"), ("PUT", "/get_node/k")]:
        status, body, _ = await call(cluster, method, cluster.url(route), data=b"x")
        assert_ko(status, body, 503)
    status, body, _ = await call(cluster, "GET", cluster.url("/get_key/k"))
    assert_ko(status, body, 404)
    assert cluster.snapshot() == ([], [])


async def test_reads_and_writes_give_503_when_the_only_volume_is_gone(cluster: Cluster) -> None:
    await cluster.put("/kept", b"kept")
    await cluster.volumes[0].stop()

    async def dead() -> bool:
        return not cluster.service.nodes.live()

    await cluster.wait_for(dead, what="the volume to be seen dead")
    before = cluster.snapshot()
    status, body, _ = await call(cluster, "GET", cluster.url("/get_key/kept"))
    assert_ko(status, body, 503)
    status, body, _ = await call(cluster, "PUT", cluster.url("/add_key/new"), data=b"x")
    assert_ko(status, body, 503)
    assert cluster.snapshot() == before


# -- write tickets ----------------------------------------------------------------------


async def test_write_to_a_volume_without_a_ticket_gives_401(seeded: Cluster) -> None:
    before = seeded.snapshot()
    volume = seeded.volumes[0].url
    for url in (f"{volume}/add_key/sneaky", f"{volume}/add_key/sneaky?t="):
        status, body, _ = await call(seeded, "PUT", url, data=b"x")
        assert_ko(status, body, 401)
    assert seeded.snapshot() == before


@pytest.mark.parametrize("part", ["signature", "payload"])
async def test_write_with_an_altered_ticket_gives_403(seeded: Cluster, part: str) -> None:
    location = await write_ticket(seeded, "/target")
    token = URL(location).query["t"]
    payload, signature = token.split(".")
    if part == "signature":
        signature = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    else:
        payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    before = seeded.snapshot()
    status, body, _ = await call(
        seeded, "PUT", with_ticket(location, f"{payload}.{signature}"), data=b"x"
    )
    assert_ko(status, body, 403)
    assert seeded.snapshot() == before


async def test_write_with_a_ticket_for_another_key_gives_403(seeded: Cluster) -> None:
    location = await write_ticket(seeded, "/allowed")
    other = location.replace("/add_key/allowed?", "/add_key/seed?")
    before = seeded.snapshot()
    status, body, _ = await call(seeded, "PUT", other, data=b"overwrite attempt")
    assert_ko(status, body, 403)
    assert seeded.snapshot() == before
    status, got, _ = await seeded.get("/seed")
    assert (status, got) == (200, b"seed")


async def test_write_with_a_forged_ticket_gives_403(seeded: Cluster) -> None:
    location = await write_ticket(seeded, "/seed")
    ticket = verify_ticket(seeded, location)
    forged = with_ticket(location, sign_ticket("not-the-cluster-secret", ticket))
    before = seeded.snapshot()
    status, body, _ = await call(seeded, "PUT", forged, data=b"x")
    assert_ko(status, body, 403)
    assert seeded.snapshot() == before


async def test_write_with_an_expired_ticket_gives_403(seeded: Cluster) -> None:
    location = await write_ticket(seeded, "/late")
    ticket = verify_ticket(seeded, location)
    # Expired an hour ago: well past the clock-skew margin the volume allows.
    expired = dataclasses.replace(ticket, expires_at=time.time() - 3600)
    before = seeded.snapshot()
    status, body, _ = await call(
        seeded, "PUT", with_ticket(location, sign_ticket(seeded.secret, expired)), data=b"x"
    )
    assert_ko(status, body, 403)
    assert "expired" in body["msg"]
    assert seeded.snapshot() == before
    # The same ticket, unexpired, is accepted: only the expiry was wrong.
    async with seeded.http.put(location, data=b"x") as resp:
        assert resp.status == 201


async def test_ticket_lifetime_follows_the_setting(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(master={("security", "ticket_ttl"): 5})
    before = time.time()
    ticket = verify_ticket(cluster, await write_ticket(cluster, "/k"))
    assert before + 5 <= ticket.expires_at <= time.time() + 5


# -- internal endpoints -----------------------------------------------------------------


def internal_routes(cluster: Cluster) -> list[tuple[str, str, str]]:
    """(process, method, path) of every /internal route of the master and the volume."""
    found = []
    for name, served in [("master", cluster.master), ("volume", cluster.volumes[0])]:
        assert served is not None
        for route in served.app.router.routes():
            canonical = route.resource.canonical if route.resource else ""
            if canonical.startswith("/internal/") and route.method not in ("HEAD", "*"):
                path = canonical.replace("{key}", "seed").replace("{id}", "1") + "?v=1&upto=1"
                found.append((name, route.method, path))
    return found


async def test_every_internal_endpoint_refuses_a_missing_or_wrong_signature(
    seeded: Cluster,
) -> None:
    routes = internal_routes(seeded)
    names = {path.split("?")[0] for _, _, path in routes}
    assert {"/internal/commit", "/internal/heartbeat", "/internal/lookup"} <= names
    assert "/internal/values/seed" in names
    before = seeded.snapshot()
    for process, method, path in routes:
        base = seeded.master_url if process == "master" else seeded.volumes[0].url
        body = b'{"values": [["/seed", 1]]}'
        status, answer, _ = await call(seeded, method, base + path, data=body)
        assert_ko(status, answer, 401)
        wrong = {SIGNATURE_HEADER: sign_request("wrong-secret", method, path, time.time())}
        status, answer, _ = await call(seeded, method, base + path, data=body, headers=wrong)
        assert_ko(status, answer, 403)
    assert seeded.snapshot() == before


@pytest.mark.parametrize("fault", ["other-path", "other-method", "stale", "malformed"])
async def test_internal_signature_is_bound_to_method_path_and_time(
    seeded: Cluster, fault: str
) -> None:
    path, method, now = "/internal/lookup", "POST", time.time()
    header = {
        "other-path": sign_request(seeded.secret, method, "/internal/commit", now),
        "other-method": sign_request(seeded.secret, "GET", path, now),
        "stale": sign_request(seeded.secret, method, path, now - 3600),
        "malformed": "not a signature",
    }[fault]
    body = b'{"values": [["/seed", 1]]}'
    status, answer, _ = await call(
        seeded, method, seeded.master_url + path, data=body, headers={SIGNATURE_HEADER: header}
    )
    assert_ko(status, answer, 403)
    # The same call, rightly signed, is answered.
    good = {SIGNATURE_HEADER: sign_request(seeded.secret, method, path, time.time())}
    status, answer, _ = await call(
        seeded, method, seeded.master_url + path, data=body, headers=good
    )
    assert status == 200 and answer["status"] == "ok"


async def test_volume_with_a_wrong_secret_is_never_admitted(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="pulzar.volume.heartbeat")
    intruder = await cluster.add_volume(security__cluster_secret="a-different-secret")
    await cluster.wait_for(
        lambda: any("refused this volume" in r.getMessage() for r in caplog.records),
        what="the master to refuse the volume",
    )
    async with cluster.http.get(cluster.url("/admin/network")) as resp:
        nodes = (await resp.json())["data"]
    assert [n["url"] for n in nodes] == [cluster.volumes[0].url]
    async with cluster.http.get(intruder.url + "/health") as resp:
        assert resp.status == 503
