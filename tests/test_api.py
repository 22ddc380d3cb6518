"""The public HTTP API of an in-process cluster: the data path, conditions, TTL, listings, admin.

Every test starts a master and its volumes in its own event loop (see conftest.py) and drives
them over real HTTP on 127.0.0.1. Bad input and authentication are in test_api_bad_input.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
import pytest
from yarl import URL

from pulzar.core.tickets import verify_ticket

if TYPE_CHECKING:
    from conftest import Cluster, ClusterFactory, RawConnection

INLINE = 1000
FILE = 200 * 1024  # over the volume's 64 KiB inline limit: stored as a file
SIZES = pytest.mark.parametrize("size", [INLINE, FILE], ids=["inline", "file"])


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest() + '"'


def keys_in_index(cluster: Cluster) -> set[str]:
    return {r.meta.key for r in cluster.service.index.iter_records()}


async def stored_value(cluster: Cluster, key: str, size: int) -> bytes:
    data = os.urandom(size)
    status, body = await cluster.put(key, data)
    assert status == 201, body
    return data


# -- write then read --------------------------------------------------------------------


@SIZES
async def test_put_redirects_to_a_volume_with_a_signed_ticket_for_the_key(
    cluster: Cluster, size: int
) -> None:
    data = os.urandom(size)
    async with cluster.http.put(
        cluster.url("/add_key/docs/report.bin"), data=data, allow_redirects=False
    ) as resp:
        assert resp.status == 307
        location = resp.headers["Location"]
    assert location.startswith(cluster.volumes[0].url + "/add_key/docs/report.bin?")
    ticket = verify_ticket(cluster.secret, URL(location).query["t"], time.time())
    assert ticket.key == "/docs/report.bin"
    assert ticket.nodes == (cluster.volume_service().node_id,)
    assert ticket.expires_at > time.time()
    # The redirect alone stores nothing.
    assert cluster.snapshot() == ([], [[]])

    async with cluster.http.put(location, data=data) as resp:
        assert resp.status == 201
        body = await resp.json()
    assert body["status"] == "ok"
    assert body["msg"] == "key added"
    assert body["data"]["url"] == f"{cluster.master_url}/get_key/docs/report.bin"
    assert body["data"]["version"] == ticket.version
    assert set(body) == {"data", "status", "msg"}


@SIZES
async def test_get_redirects_to_a_volume_that_serves_bytes_with_their_headers(
    cluster: Cluster, size: int
) -> None:
    data = os.urandom(size)
    before = time.time()
    status, body = await cluster.put("/a/b.bin", data, headers={"Content-Type": "image/png"})
    assert status == 201, body

    async with cluster.http.get(cluster.url("/get_key/a/b.bin"), allow_redirects=False) as resp:
        assert resp.status == 307
        location = resp.headers["Location"]
    assert location.startswith(cluster.volumes[0].url + "/get_key/a/b.bin?")

    status, got, resp = await cluster.get("/a/b.bin")
    assert status == 200
    assert got == data
    assert resp.headers["Content-Length"] == str(size)
    assert resp.headers["ETag"] == etag_of(data)
    assert resp.headers["Content-Type"] == "image/png"
    modified = parsedate_to_datetime(resp.headers["Last-Modified"]).timestamp()
    assert before - 1 <= modified <= time.time() + 1


@SIZES
async def test_value_is_stored_inline_when_small_and_as_a_file_when_large(
    cluster: Cluster, size: int
) -> None:
    data = os.urandom(size)
    status, body = await cluster.put("/placement", data)
    assert status == 201
    stored = cluster.store().get("/placement", body["data"]["version"])
    assert stored is not None
    if size == INLINE:
        assert stored.data == data and stored.path is None
    else:
        assert stored.data is None and stored.path is not None
        assert stored.path.read_bytes() == data


@pytest.mark.parametrize(
    ("given", "served"),
    [
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ("application/json", "application/json"),
        ("application/x-www-form-urlencoded", "application/octet-stream"),
    ],
)
async def test_get_serves_the_content_type_given_at_put(
    cluster: Cluster, given: str, served: str
) -> None:
    status, _ = await cluster.put("/typed", b"a=1&b=2", headers={"Content-Type": given})
    assert status == 201
    status, got, resp = await cluster.get("/typed")
    assert status == 200
    assert got == b"a=1&b=2"
    assert resp.headers["Content-Type"] == served
    _, stat = await cluster.stat("/typed")
    assert stat["data"]["content_type"] == served


@SIZES
async def test_head_gives_the_headers_of_a_get_without_the_body(
    cluster: Cluster, size: int
) -> None:
    data = await stored_value(cluster, "/headed", size)
    async with cluster.http.head(cluster.url("/get_key/headed"), allow_redirects=True) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(size)
        assert resp.headers["ETag"] == etag_of(data)
        assert "Last-Modified" in resp.headers
        assert await resp.read() == b""


@SIZES
@pytest.mark.parametrize(
    ("header", "span"),
    [("bytes=0-4", (0, 5)), ("bytes=-3", (-3, None)), ("bytes=5-", (5, None))],
    ids=["first-five", "last-three", "from-five"],
)
async def test_range_request_gives_206_with_content_range(
    cluster: Cluster, size: int, header: str, span: tuple[int, int | None]
) -> None:
    data = await stored_value(cluster, "/ranged", size)
    start = span[0] % size
    stop = size if span[1] is None else span[1]
    status, got, resp = await cluster.get("/ranged", headers={"Range": header})
    assert status == 206
    assert got == data[start:stop]
    assert resp.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
    assert resp.headers["Content-Length"] == str(stop - start)
    assert resp.headers["ETag"] == etag_of(data)


@SIZES
async def test_unsatisfiable_range_gives_416(cluster: Cluster, size: int) -> None:
    await stored_value(cluster, "/ranged", size)
    status, got, resp = await cluster.get("/ranged", headers={"Range": f"bytes={size}-"})
    assert status == 416
    assert resp.headers["Content-Range"] == f"bytes */{size}"
    assert resp.headers["Content-Type"] == "application/json"
    body = orjson.loads(got)
    assert body["status"] == "ko" and body["msg"]


@SIZES
async def test_get_with_if_none_match_of_the_etag_gives_304(cluster: Cluster, size: int) -> None:
    data = await stored_value(cluster, "/cached", size)
    status, got, resp = await cluster.get("/cached", headers={"If-None-Match": etag_of(data)})
    assert status == 304
    assert got == b""
    assert resp.headers["ETag"] == etag_of(data)
    status, got, _ = await cluster.get("/cached", headers={"If-None-Match": etag_of(b"other")})
    assert status == 200
    assert got == data


async def test_percent_encoded_slash_in_a_key_is_a_slash(cluster: Cluster) -> None:
    status, body = await cluster.put("/a%2Fb", b"slashed")
    assert status == 201
    assert body["data"]["url"] == f"{cluster.master_url}/get_key/a/b"
    assert keys_in_index(cluster) == {"/a/b"}
    status, got, _ = await cluster.get("/a/b")
    assert (status, got) == (200, b"slashed")
    status, got, _ = await cluster.get("/a%2Fb")
    assert (status, got) == (200, b"slashed")


async def test_any_utf8_key_round_trips(cluster: Cluster) -> None:
    key = "/ünïcødé/κλειδί/ключ 🔑.txt"
    status, _ = await cluster.put(quote(key), b"unicode")
    assert status == 201
    status, got, _ = await cluster.get(quote(key))
    assert (status, got) == (200, b"unicode")
    _, listing = await cluster.list_keys()
    assert [k["key"] for k in listing["data"]["keys"]] == [key]


async def test_get_of_a_missing_key_gives_404_envelope(cluster: Cluster) -> None:
    status, got, _ = await cluster.get("/never/written")
    assert status == 404
    body = orjson.loads(got)
    assert body["status"] == "ko" and body["data"] is None and "/never/written" in body["msg"]


# -- bodies -----------------------------------------------------------------------------


async def test_empty_value_is_stored_and_read_back(cluster: Cluster) -> None:
    status, body = await cluster.put("/empty", b"", headers={"Content-Length": "0"})
    assert status == 201, body
    status, got, resp = await cluster.get("/empty")
    assert (status, got) == (200, b"")
    assert resp.headers["Content-Length"] == "0"
    assert resp.headers["ETag"] == etag_of(b"")
    _, stat = await cluster.stat("/empty")
    assert stat["data"]["size"] == 0


async def _chunks(data: bytes, size: int = 64 * 1024) -> Any:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


@SIZES
async def test_chunked_upload_without_content_length_is_accepted(
    cluster: Cluster, size: int
) -> None:
    data = os.urandom(size)
    # Like `curl -T -`: the master answers the Expect with its 307, so no body goes to it.
    async with cluster.http.put(
        cluster.url("/add_key/streamed"), data=_chunks(data), expect100=True, allow_redirects=False
    ) as resp:
        assert resp.status == 307
        location = resp.headers["Location"]
    async with cluster.http.put(location, data=_chunks(data)) as resp:
        assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert resp.status == 201, await resp.text()
    status, got, _ = await cluster.get("/streamed")
    assert status == 200
    assert got == data


async def _put_head_only(cluster: Cluster, key: str, headers: str) -> tuple[RawConnection, Any]:
    conn = await cluster.raw()
    await conn.send(
        f"PUT /add_key{key} HTTP/1.1\r\nHost: {URL(cluster.master_url).raw_authority}\r\n"
        f"{headers}\r\n".encode()
    )
    return conn, await conn.read_response()


async def test_master_answers_expect_100_continue_with_the_307_itself(cluster: Cluster) -> None:
    conn, resp = await _put_head_only(
        cluster, "/expected", "Content-Length: 11\r\nExpect: 100-continue\r\n"
    )
    try:
        # The first thing back is the redirect, not "100 Continue": the body is not wanted.
        assert resp.status == 307
        location = resp.headers["location"]
        assert location.startswith(cluster.volumes[0].url + "/add_key/expected?t=")
    finally:
        await conn.close()
    async with cluster.http.put(location, data=b"hello world") as put:
        assert put.status == 201
    status, got, _ = await cluster.get("/expected")
    assert (status, got) == (200, b"hello world")


async def test_master_answers_a_large_put_without_reading_its_body(cluster: Cluster) -> None:
    # 100 MiB announced, not one byte sent: the 307 comes anyway, and says the connection
    # ends there, so that the client sends its body to the volume only.
    conn, resp = await _put_head_only(cluster, "/large", f"Content-Length: {100 * 1024**2}\r\n")
    try:
        assert resp.status == 307
        assert resp.headers["location"].startswith(cluster.volumes[0].url + "/add_key/large?t=")
        assert resp.headers["connection"].lower() == "close"
    finally:
        await conn.close()


async def test_master_answers_a_chunked_put_without_reading_its_body(cluster: Cluster) -> None:
    conn, resp = await _put_head_only(cluster, "/chunked", "Transfer-Encoding: chunked\r\n")
    try:
        assert resp.status == 307
        assert resp.headers["location"].startswith(cluster.volumes[0].url + "/add_key/chunked?t=")
    finally:
        await conn.close()


async def test_master_keeps_the_connection_after_a_small_put_body(cluster: Cluster) -> None:
    host = URL(cluster.master_url).raw_authority
    conn = await cluster.raw()
    try:
        head = f"PUT /add_key/small HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\n"
        await conn.send(head.encode() + b"hello")
        assert (await conn.read_response()).status == 307
        await conn.send(f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert (await conn.read_response()).status == 200
    finally:
        await conn.close()


# -- overwrite and conditions ----------------------------------------------------------


async def test_put_existing_key_replaces_value_and_bumps_version(cluster: Cluster) -> None:
    status, first = await cluster.put("/conf/app.toml", b"port = 1")
    assert status == 201
    status, second = await cluster.put("/conf/app.toml", b"port = 2222")
    assert status == 201
    v1, v2 = first["data"]["version"], second["data"]["version"]
    assert v2 > v1
    status, got, resp = await cluster.get("/conf/app.toml")
    assert (status, got) == (200, b"port = 2222")
    assert resp.headers["ETag"] == etag_of(b"port = 2222")
    _, stat = await cluster.stat("/conf/app.toml")
    assert (stat["data"]["version"], stat["data"]["size"]) == (v2, len(b"port = 2222"))
    # The old version leaves the volume once the new one is committed.
    await cluster.wait_for(
        lambda: cluster.store().versions("/conf/app.toml") == [v2], what="old version dropped"
    )


@pytest.mark.parametrize("how", ["header", "query"])
async def test_create_only_put_of_a_new_key_is_stored(cluster: Cluster, how: str) -> None:
    if how == "header":
        status, _ = await cluster.put("/new", b"fresh", headers={"If-None-Match": "*"})
    else:
        status, _ = await cluster.put("/new", b"fresh", query="?if_none_match=*")
    assert status == 201
    status, got, _ = await cluster.get("/new")
    assert (status, got) == (200, b"fresh")


@pytest.mark.parametrize("how", ["header", "query"])
async def test_create_only_put_of_an_existing_key_gives_409_and_changes_nothing(
    cluster: Cluster, how: str
) -> None:
    await cluster.put("/taken", b"original")
    before = cluster.snapshot()
    if how == "header":
        status, body = await cluster.put("/taken", b"intruder", headers={"If-None-Match": "*"})
    else:
        status, body = await cluster.put("/taken", b"intruder", query="?if_none_match=*")
    assert status == 409
    assert body["status"] == "ko" and body["msg"]
    assert cluster.snapshot() == before
    status, got, _ = await cluster.get("/taken")
    assert (status, got) == (200, b"original")


@pytest.mark.parametrize("form", ["quoted-etag", "bare-etag", "version"])
async def test_if_match_with_the_current_etag_or_version_replaces_the_value(
    cluster: Cluster, form: str
) -> None:
    _, first = await cluster.put("/cas", b"one")
    condition = {
        "quoted-etag": etag_of(b"one"),
        "bare-etag": etag_of(b"one").strip('"'),
        "version": str(first["data"]["version"]),
    }[form]
    status, second = await cluster.put("/cas", b"two", headers={"If-Match": condition})
    assert status == 201, second
    assert second["data"]["version"] > first["data"]["version"]
    status, got, _ = await cluster.get("/cas")
    assert (status, got) == (200, b"two")


@pytest.mark.parametrize("form", ["etag", "version", "missing-key"])
async def test_if_match_that_does_not_match_gives_412_and_changes_nothing(
    cluster: Cluster, form: str
) -> None:
    _, first = await cluster.put("/cas", b"one")
    before = cluster.snapshot()
    key, condition = {
        "etag": ("/cas", etag_of(b"not the value")),
        "version": ("/cas", str(first["data"]["version"] + 1000)),
        "missing-key": ("/absent", etag_of(b"one")),
    }[form]
    status, body = await cluster.put(key, b"two", headers={"If-Match": condition})
    assert status == 412
    assert body["status"] == "ko" and body["msg"]
    assert cluster.snapshot() == before
    status, got, _ = await cluster.get("/cas")
    assert (status, got) == (200, b"one")


async def test_compare_and_swap_that_lost_after_the_redirect_gives_412(cluster: Cluster) -> None:
    _, first = await cluster.put("/cas", b"one")
    async with cluster.http.put(
        cluster.url("/add_key/cas"),
        data=b"late",
        headers={"If-Match": str(first["data"]["version"])},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 307
        location = resp.headers["Location"]
    # Another writer gets in between the redirect and the upload.
    _, second = await cluster.put("/cas", b"winner")
    async with cluster.http.put(location, data=b"late") as resp:
        assert resp.status == 412
        assert (await resp.json())["status"] == "ko"
    status, got, _ = await cluster.get("/cas")
    assert (status, got) == (200, b"winner")
    await cluster.wait_for(
        lambda: cluster.store().versions("/cas") == [second["data"]["version"]],
        what="only the winning version on the volume",
    )


async def test_two_concurrent_create_only_puts_give_one_201_and_one_409(cluster: Cluster) -> None:
    results = await asyncio.gather(
        cluster.put("/race", b"left", headers={"If-None-Match": "*"}),
        cluster.put("/race", b"right", headers={"If-None-Match": "*"}),
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409]
    winner = b"left" if results[0][0] == 201 else b"right"
    status, got, _ = await cluster.get("/race")
    assert (status, got) == (200, winner)
    await cluster.wait_for(
        lambda: len(cluster.store().versions("/race")) == 1, what="loser dropped"
    )


async def test_concurrent_overwrites_end_with_the_highest_acknowledged_version(
    cluster: Cluster,
) -> None:
    await cluster.put("/bystander", b"untouched")
    values = [f"value-{i}".encode() * (i + 1) for i in range(12)]
    results = await asyncio.gather(*(cluster.put("/shared", v) for v in values))
    assert all(status == 201 for status, _ in results)
    versions = [body["data"]["version"] for _, body in results]
    assert len(set(versions)) == len(versions)
    newest = max(versions)
    status, got, _ = await cluster.get("/shared")
    assert status == 200
    assert got == values[versions.index(newest)]
    _, stat = await cluster.stat("/shared")
    assert stat["data"]["version"] == newest
    status, got, _ = await cluster.get("/bystander")
    assert (status, got) == (200, b"untouched")
    await cluster.wait_for(
        lambda: cluster.store().versions("/shared") == [newest], what="one version"
    )


# -- delete -----------------------------------------------------------------------------


@SIZES
async def test_delete_removes_the_key_from_reads_listings_and_the_volume(
    cluster: Cluster, size: int
) -> None:
    await stored_value(cluster, "/doomed", size)
    await cluster.put("/kept", b"kept")
    async with cluster.http.delete(cluster.url("/delete_key/doomed")) as resp:
        assert resp.status == 200
        assert await resp.json() == {"data": None, "status": "ok", "msg": "key deleted"}
    status, _, _ = await cluster.get("/doomed")
    assert status == 404
    status, _ = await cluster.stat("/doomed")
    assert status == 404
    _, listing = await cluster.list_keys()
    assert [k["key"] for k in listing["data"]["keys"]] == ["/kept"]
    await cluster.wait_for(lambda: cluster.store().versions("/doomed") == [], what="value dropped")
    assert cluster.store().used_bytes == len(b"kept")
    assert not any(cluster.store().blobs.rglob("*-*"))


async def test_delete_of_a_missing_key_gives_404(cluster: Cluster) -> None:
    async with cluster.http.delete(cluster.url("/delete_key/nothing/here")) as resp:
        assert resp.status == 404
        body = await resp.json()
    assert body["status"] == "ko" and body["data"] is None


async def test_deleted_key_can_be_written_again(cluster: Cluster) -> None:
    await cluster.put("/phoenix", b"first life")
    async with cluster.http.delete(cluster.url("/delete_key/phoenix")) as resp:
        assert resp.status == 200
    status, _ = await cluster.put("/phoenix", b"second life", headers={"If-None-Match": "*"})
    assert status == 201
    status, got, _ = await cluster.get("/phoenix")
    assert (status, got) == (200, b"second life")


# -- TTL --------------------------------------------------------------------------------

TINY_TTL_DAYS = 0.00001  # 0.864 s


async def test_expired_key_disappears_from_reads_and_listings_at_once(
    make_cluster: ClusterFactory,
) -> None:
    # The sweep is slowed down, so what hides the key is the expiry itself, not the sweep.
    cluster = await make_cluster(master={("timers", "ttl_sweep"): 3600})
    status, body = await cluster.put("/tmp/short", b"brief", query=f"?temporal={TINY_TTL_DAYS}")
    assert status == 201, body
    await cluster.put("/tmp/long", b"lasting")
    _, stat = await cluster.stat("/tmp/short")
    assert stat["data"]["expires"] is not None
    async with cluster.http.get(cluster.url("/get_key/tmp/short"), allow_redirects=False) as resp:
        volume_location = resp.headers["Location"]

    async def gone() -> bool:
        return (await cluster.get("/tmp/short"))[0] == 404

    await cluster.wait_for(gone, timeout=5, what="the key to expire")
    _, listing = await cluster.list_keys("tmp/")
    assert [k["key"] for k in listing["data"]["keys"]] == ["/tmp/long"]
    status, _ = await cluster.stat("/tmp/short")
    assert status == 404
    async with cluster.http.get(volume_location) as resp:
        assert resp.status == 404  # the volume does not serve it either
    assert "/tmp/short" in keys_in_index(cluster)  # not swept yet
    status, got, _ = await cluster.get("/tmp/long")
    assert (status, got) == (200, b"lasting")


async def test_ttl_sweep_reclaims_the_expired_value_on_the_volume(cluster: Cluster) -> None:
    status, body = await cluster.put(
        "/tmp/big", os.urandom(FILE), query=f"?temporal={TINY_TTL_DAYS}"
    )
    assert status == 201
    assert cluster.store().versions("/tmp/big") == [body["data"]["version"]]
    await cluster.wait_for(
        lambda: cluster.store().versions("/tmp/big") == [] and not keys_in_index(cluster),
        timeout=5,
        what="the sweep to reclaim the value",
    )
    assert cluster.store().used_bytes == 0


async def test_listing_shows_the_expiry_of_a_temporal_key(cluster: Cluster) -> None:
    before = time.time()
    await cluster.put("/tmp/day", b"x", query="?temporal=1")
    await cluster.put("/tmp/forever", b"x")
    _, listing = await cluster.list_keys("tmp/")
    entries = {k["key"]: k for k in listing["data"]["keys"]}
    assert entries["/tmp/forever"]["expires"] is None
    expires = entries["/tmp/day"]["expires"]
    assert expires.endswith("Z")
    when = datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp()
    assert before + 86400 - 5 <= when <= time.time() + 86400 + 5


# -- listings and metadata --------------------------------------------------------------


async def _fill(cluster: Cluster, keys: list[str]) -> None:
    results = await asyncio.gather(*(cluster.put(quote(k), k.encode()) for k in keys))
    assert all(status == 201 for status, _ in results)


async def _all_pages(cluster: Cluster, prefix: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        query = f"?limit={limit}" + (f"&after={quote(after, safe='')}" if after else "")
        status, body = await cluster.list_keys(prefix, query)
        assert status == 200, body
        pages.append([k["key"] for k in body["data"]["keys"]])
        after = body["data"]["next"]
        if after is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


@pytest.mark.parametrize(("limit", "pages"), [(5, 5), (23, 1), (22, 2), (1000, 1)])
async def test_list_keys_pages_return_every_key_once_in_order(
    cluster: Cluster, limit: int, pages: int
) -> None:
    keys = [f"/p/key-{i:02d}" for i in range(23)]
    await _fill(cluster, [*keys, "/q/other", "/pz"])
    got = await _all_pages(cluster, "p/", limit)
    assert len(got) == pages
    assert [k for page in got for k in page] == sorted(keys)
    assert all(len(page) == limit for page in got[:-1])


@pytest.mark.parametrize("path", ["/list_keys", "/list_keys/"])
async def test_list_keys_with_an_empty_prefix_lists_every_key(cluster: Cluster, path: str) -> None:
    keys = ["/a", "/b/c", "/z/y/x", "/ü"]
    await _fill(cluster, keys)
    async with cluster.http.get(cluster.url(path)) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert [k["key"] for k in body["data"]["keys"]] == sorted(keys)
    assert body["data"]["next"] is None


async def test_list_keys_prefix_is_a_plain_string(cluster: Cluster) -> None:
    await _fill(cluster, ["/logs/2026-01", "/logs/2026-02", "/logs2", "/log", "/other"])
    _, body = await cluster.list_keys("logs")
    assert [k["key"] for k in body["data"]["keys"]] == ["/logs/2026-01", "/logs/2026-02", "/logs2"]
    _, body = await cluster.list_keys("logs/2026-0")
    assert [k["key"] for k in body["data"]["keys"]] == ["/logs/2026-01", "/logs/2026-02"]
    _, body = await cluster.list_keys("nothing")
    assert body["data"] == {"keys": [], "next": None}


async def test_list_entries_carry_key_size_version_created_and_expires(cluster: Cluster) -> None:
    _, put = await cluster.put("/entry", b"12345")
    _, body = await cluster.list_keys()
    (entry,) = body["data"]["keys"]
    assert {"key", "size", "version", "created", "expires"} <= set(entry)
    assert entry["key"] == "/entry"
    assert entry["size"] == 5
    assert entry["version"] == put["data"]["version"]
    assert entry["created"].endswith("Z")
    assert entry["expires"] is None


async def test_stat_key_shows_version_size_etag_type_and_replicas(cluster2: Cluster) -> None:
    _, put = await cluster2.put("/stat/me", b"hello", headers={"Content-Type": "text/plain"})
    status, body = await cluster2.stat("/stat/me")
    assert status == 200
    data = body["data"]
    assert data["key"] == "/stat/me"
    assert data["version"] == put["data"]["version"]
    assert data["size"] == 5
    assert data["etag"] == hashlib.sha256(b"hello").hexdigest()
    assert data["content_type"] == "text/plain"
    assert data["replicas"]
    ids = [cluster2.volume_service(i).node_id for i in range(2)]
    for replica in data["replicas"]:
        holder = ids.index(replica["id"])
        assert replica["url"] == cluster2.volumes[holder].url
        assert replica["node"] == f"vol{holder}"
        assert replica["state"] == "alive"
        assert data["version"] in cluster2.store(holder).versions("/stat/me")


async def test_stat_of_a_missing_key_gives_404(cluster: Cluster) -> None:
    status, body = await cluster.stat("/missing")
    assert status == 404
    assert body["status"] == "ko"


# -- admin ------------------------------------------------------------------------------


async def test_admin_status_gives_the_index_stat_with_one_entry_per_key(cluster: Cluster) -> None:
    await _fill(cluster, [f"/s/{i}" for i in range(7)])
    async with cluster.http.get(cluster.url("/admin/status")) as resp:
        assert resp.status == 200
        body = await resp.json()
    stat = body["data"]
    for name in ("psize", "depth", "branch_pages", "leaf_pages", "overflow_pages", "entries"):
        assert isinstance(stat[name], int), name
    assert stat["entries"] == 7
    assert stat["psize"] > 0 and stat["leaf_pages"] >= 1


async def test_admin_network_lists_the_volumes(cluster2: Cluster) -> None:
    async with cluster2.http.get(cluster2.url("/admin/network")) as resp:
        assert resp.status == 200
        body = await resp.json()
    nodes = body["data"]
    assert sorted(n["node"] for n in nodes) == ["vol0", "vol1"]
    assert sorted(n["url"] for n in nodes) == sorted(v.url for v in cluster2.volumes)
    for n in nodes:
        assert 0 <= n["percent"] <= 100
        assert isinstance(n["load"], int | float)
        assert n["synch"] is True


@pytest.mark.parametrize("by", ["id", "name"])
async def test_admin_network_shows_one_node_by_id_or_name(cluster2: Cluster, by: str) -> None:
    ident = cluster2.volume_service(1).node_id if by == "id" else "vol1"
    async with cluster2.http.get(cluster2.url(f"/admin/network/{ident}")) as resp:
        assert resp.status == 200
        node = (await resp.json())["data"]
    assert node["node"] == "vol1"
    assert node["url"] == cluster2.volumes[1].url
    assert node["synch"] is True


async def test_admin_network_of_an_unknown_node_gives_404(cluster: Cluster) -> None:
    async with cluster.http.get(cluster.url("/admin/network/no-such-node")) as resp:
        assert resp.status == 404
        body = await resp.json()
    assert body["status"] == "ko" and body["data"] is None


async def test_stopped_volume_is_marked_dead_and_new_writes_avoid_it(
    make_cluster: ClusterFactory,
) -> None:
    cluster2 = await make_cluster(volumes=2, master={("general", "replicas"): 1})
    await cluster2.volumes[1].stop()

    async def vol1_dead() -> bool:
        async with cluster2.http.get(cluster2.url("/admin/network/vol1")) as resp:
            return (await resp.json())["data"]["synch"] is False

    await cluster2.wait_for(vol1_dead, what="vol1 to be seen dead")
    await _fill(cluster2, [f"/after/{i}" for i in range(10)])
    alive = cluster2.volume_service(0).node_id
    for i in range(10):
        _, stat = await cluster2.stat(f"/after/{i}")
        assert [r["id"] for r in stat["data"]["replicas"]] == [alive]


async def test_health_is_503_without_a_live_volume(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(volumes=0)
    async with cluster.http.get(cluster.url("/health")) as resp:
        assert resp.status == 503
        assert (await resp.json())["status"] == "ko"
    await cluster.add_volume()
    await cluster.wait_live(1)
    async with cluster.http.get(cluster.url("/health")) as resp:
        assert resp.status == 200


# -- direct uploads ---------------------------------------------------------------------


async def test_get_node_gives_a_volume_url_for_a_direct_upload(cluster: Cluster) -> None:
    async with cluster.http.get(cluster.url("/get_node/direct/file.txt")) as resp:
        assert resp.status == 200
        body = await resp.json()
    node_url = body["data"]["node"]
    assert node_url.startswith(cluster.volumes[0].url + "/add_key/direct/file.txt?t=")
    async with cluster.http.put(node_url + f"&temporal={TINY_TTL_DAYS}", data=b"direct") as resp:
        assert resp.status == 201
    status, got, _ = await cluster.get("/direct/file.txt")
    assert (status, got) == (200, b"direct")
    _, stat = await cluster.stat("/direct/file.txt")
    assert stat["data"]["expires"] is not None  # `temporal` appended to the URL counts


async def test_put_get_node_is_another_name_for_add_key(cluster: Cluster) -> None:
    async with cluster.http.put(cluster.url("/get_node/alias"), data=b"aliased") as resp:
        assert resp.status == 201
        assert (await resp.json())["msg"] == "key added"
    status, got, _ = await cluster.get("/alias")
    assert (status, got) == (200, b"aliased")


# -- restarts ---------------------------------------------------------------------------


async def test_version_is_monotonic_across_a_master_restart(cluster: Cluster) -> None:
    _, first = await cluster.put("/counter", b"before")
    await cluster.stop_master()
    await cluster.start_master()
    await cluster.wait_live(1)
    _, second = await cluster.put("/other", b"after")
    assert second["data"]["version"] > first["data"]["version"]
    status, got, _ = await cluster.get("/counter")
    assert (status, got) == (200, b"before")
    _, third = await cluster.put("/counter", b"again")
    assert third["data"]["version"] > second["data"]["version"]


@pytest.mark.parametrize("key", ["/a&b=c;d", "/x,y$z!(q)*:@'", "/sp ace+plus%25"])
async def test_keys_with_url_characters_replicate_and_read_back(
    make_cluster: ClusterFactory, key: str
) -> None:
    cluster = await make_cluster(volumes=2, master={("general", "replicas"): 2})
    encoded = quote(key, safe="/")
    async with cluster.http.put(cluster.url(f"/add_key{encoded}"), data=b"v") as resp:
        assert resp.status == 201, await resp.text()
    async with cluster.http.get(cluster.url(f"/stat_key{encoded}")) as resp:
        assert len((await resp.json())["data"]["replicas"]) == 2
