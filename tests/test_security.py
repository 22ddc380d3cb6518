"""Tokens, admin tokens and read tickets on every public endpoint (in-process cluster)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from yarl import URL

from pulzar.core.tickets import sign_read_ticket
from pulzar.http.openapi import document

if TYPE_CHECKING:
    from conftest import Cluster, ClusterFactory

TOKEN, ADMIN = "user-token", "admin-token"
SECURED = {("security", "token"): TOKEN, ("security", "admin_token"): ADMIN}
OPEN = {"/health", "/openapi.json"}
ADMIN_OPS = {
    ("post", "/launch_job/{name}"),
    ("post", "/cancel_job/{id}"),
    ("post", "/admin/jobs/deploy"),
    ("post", "/admin/restore"),
    ("get", "/admin/restore_node/{key}"),
    ("post", "/admin/drain/{node}"),
    ("delete", "/admin/network/{node}"),
}
FILL = {
    "key": "seed",
    "prefix": "se",
    "node": "nobody",
    "id": "1",
    "name": "g/n",
    "which": "ok",
    "tail": "example/a",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def secured(make_cluster: ClusterFactory) -> Cluster:
    cluster = await make_cluster(volumes=1, master=SECURED, volume=SECURED)
    status, body = await cluster.put("/seed", b"seed bytes", headers=bearer(TOKEN))
    assert status == 201, body
    return cluster


async def send(
    cluster: Cluster,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, Any]:
    async with cluster.http.request(
        method, URL(url, encoded=True), headers=headers, data=data, allow_redirects=False
    ) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


def operations() -> list[tuple[str, str]]:
    ops = []
    for path, methods in document()["paths"].items():
        for method in methods:
            concrete = path
            for name, value in FILL.items():
                concrete = concrete.replace("{" + name + "}", value)
            ops.append((method, path, concrete))
    return [(m, p) for m, p, _ in ops if p not in OPEN]


@pytest.mark.parametrize(("method", "path"), operations())
async def test_every_public_endpoint_refuses_a_missing_or_wrong_token(
    secured: Cluster, method: str, path: str
) -> None:
    concrete = path
    for name, value in FILL.items():
        concrete = concrete.replace("{" + name + "}", value)
    url = secured.url(concrete)
    before = secured.snapshot()
    status, body = await send(secured, method.upper(), url, data=b"{}")
    assert status == 401 and body["status"] == "ko", (method, path, status, body)
    wrong = "nope" if (method, path) not in ADMIN_OPS else TOKEN
    status, body = await send(secured, method.upper(), url, bearer(wrong), data=b"{}")
    assert status == 403 and body["status"] == "ko", (method, path, status, body)
    assert secured.snapshot() == before


async def test_the_token_opens_the_api_and_the_admin_token_opens_everything(
    secured: Cluster,
) -> None:
    status, body = await send(secured, "GET", secured.url("/list_keys/"), bearer(TOKEN))
    assert status == 200 and [k["key"] for k in body["data"]["keys"]] == ["/seed"]
    status, _ = await send(secured, "GET", secured.url("/admin/status"), bearer(ADMIN))
    assert status == 200
    status, _ = await send(secured, "POST", secured.url("/launch_job/g/n"), bearer(ADMIN), b"{}")
    assert status == 404  # past the check: there is no such job


async def test_curl_style_read_goes_through_with_the_ticket_in_the_redirect(
    secured: Cluster,
) -> None:
    status, _ = await send(secured, "GET", secured.url("/get_key/seed"), bearer(TOKEN))
    assert status == 307
    async with secured.http.get(
        secured.url("/get_key/seed"), headers=bearer(TOKEN), allow_redirects=False
    ) as resp:
        location = resp.headers["Location"]
    # curl -L drops Authorization on a redirect to another port: the ticket is enough.
    async with secured.http.get(location) as resp:
        assert resp.status == 200 and await resp.read() == b"seed bytes"
    ticket = parse_qs(urlsplit(location).query)["rt"][0]
    altered = location.replace(ticket, ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB"))
    async with secured.http.get(altered) as resp:
        assert resp.status == 401
    other_key = location.replace("/get_key/seed", "/get_key/other")
    async with secured.http.get(other_key) as resp:
        assert resp.status == 401
    expired = sign_read_ticket(secured.secret, "/seed", time.time() - 3600)
    async with secured.http.get(location.replace(ticket, expired)) as resp:
        assert resp.status == 401


async def test_a_volume_accepts_the_bearer_token_for_location_cached_reads(
    secured: Cluster,
) -> None:
    url = f"{secured.volumes[0].url}/get_key/seed"
    async with secured.http.get(url) as resp:
        assert resp.status == 401
    async with secured.http.get(url, headers=bearer("wrong")) as resp:
        assert resp.status == 403
    async with secured.http.get(url, headers=bearer(TOKEN)) as resp:
        assert resp.status == 200 and await resp.read() == b"seed bytes"


async def test_curl_style_write_goes_through_with_the_write_ticket(secured: Cluster) -> None:
    async with secured.http.put(
        secured.url("/add_key/w"), data=b"v", headers=bearer(TOKEN), allow_redirects=False
    ) as resp:
        assert resp.status == 307
        location = resp.headers["Location"]
    async with secured.http.put(location, data=b"v") as resp:
        assert resp.status == 201


async def test_reads_can_be_left_open_while_writes_need_the_token(
    make_cluster: ClusterFactory,
) -> None:
    settings = {**SECURED, ("security", "reads_open"): True}
    cluster = await make_cluster(volumes=1, master=settings, volume=settings)
    assert (await cluster.put("/k", b"x"))[0] == 401
    assert (await cluster.put("/k", b"x", headers=bearer(TOKEN)))[0] == 201
    status, got, _ = await cluster.get("/k")
    assert (status, got) == (200, b"x")
    status, _ = await send(cluster, "DELETE", cluster.url("/delete_key/k"))
    assert status == 401


async def test_with_a_token_but_no_admin_token_no_one_can_run_code(
    make_cluster: ClusterFactory,
) -> None:
    settings = {("security", "token"): TOKEN}
    cluster = await make_cluster(volumes=1, master=settings, volume=settings)
    status, body = await send(cluster, "POST", cluster.url("/launch_job/g/n"), bearer(TOKEN), b"{}")
    assert status == 403 and "admin_token" in body["msg"]


ESCAPES = [
    "..%2F..%2Fescape",
    "%2e%2e/%2e%2e/escape",
    "a/../../escape",
    "%2Fabsolute%2Fescape",
    "a%00b",
    "%C0%AE%C0%AE/escape",
    "%E0%80%AF/escape",
    "a/%2e%2e%2f%2e%2e%2fescape",
    "..\\..\\escape",
    "/etc/passwd",
    "C:%5Cescape",
]


@pytest.mark.parametrize("raw", ESCAPES)
async def test_keys_built_to_escape_the_data_directory_stay_inside_it(
    make_cluster: ClusterFactory, tmp_path: Any, raw: str
) -> None:
    cluster = await make_cluster(volumes=1)
    before = {p for p in tmp_path.rglob("*")}
    for value in (b"small", b"L" * 200_000):
        status, _, _ = await send_raw(cluster, "PUT", cluster.url(f"/add_key/{raw}"), value)
        assert status in (201, 400), (raw, status)
    created = {p for p in tmp_path.rglob("*")} - before
    roots = [cluster.root]
    assert all(any(p.is_relative_to(r) for r in roots) for p in created), created
    assert not any("escape" in p.name or p.name == "passwd" for p in created)
    for path in created:
        if path.is_file() and path.stat().st_size == 200_000:
            assert path.is_relative_to(cluster.root / "volume0" / "blobs")


async def send_raw(cluster: Cluster, method: str, url: str, data: bytes) -> tuple[int, Any, Any]:
    """PUT through the 307 with the path sent as given."""
    async with cluster.http.request(
        method, URL(url, encoded=True), data=data, allow_redirects=False
    ) as resp:
        if resp.status != 307:
            return resp.status, await resp.json(), resp
        location = resp.headers["Location"]
    async with cluster.http.request(method, URL(location, encoded=True), data=data) as resp:
        return resp.status, await resp.json(), resp


async def test_open_reads_do_not_hand_out_write_tickets(make_cluster: ClusterFactory) -> None:
    settings = {**SECURED, ("security", "reads_open"): True}
    cluster = await make_cluster(volumes=1, master=settings, volume=settings)
    status, _ = await send(cluster, "GET", cluster.url("/get_node/k"))
    assert status == 401
