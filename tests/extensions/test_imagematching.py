"""The imagematching extension, with the real OpenCV: where is the PUT image in a base image?"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from extension_cluster import Master, MasterFactory, free_port

from pulzar.extensions.fetch import host_allowed

X, Y, W, H = 123, 77, 60, 45


def scene(seed: int, width: int = 400, height: int = 300) -> np.ndarray:
    """A textured colour image: blurred noise, so every window of it looks different."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 0)


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


BASE = scene(1)
CROP = BASE[Y : Y + H, X : X + W].copy()


@pytest.fixture
async def stored(master_volume: Master) -> Master:
    await master_volume.put_key("/images/base.png", png(BASE))
    await master_volume.put_key("/images/notes.txt", b"not a picture")
    return master_volume


async def match(master: Master, query: str, template: bytes) -> tuple[int, dict[str, object]]:
    return await master.call(f"/extension/imagematching?{query}", data=template)


async def test_finds_a_crop_at_its_coordinates_with_its_own_size(stored: Master) -> None:
    status, body = await match(stored, "image_key=/images/base.png", png(CROP))
    assert status == 200, body
    data = body["data"]
    assert data["found"] is True
    assert data["coordinates"] == {"x": X, "y": Y, "w": W, "h": H}
    assert data["percent_of_match"] >= 0.99  # type: ignore[operator]


async def test_rejects_an_unrelated_image(stored: Master) -> None:
    unrelated = scene(2)[:H, :W]
    status, body = await match(stored, "image_key=/images/base.png", png(unrelated))
    assert status == 200, body
    data = body["data"]
    assert data["found"] is False and data["coordinates"] == {}
    assert data["percent_of_match"] < 0.5  # type: ignore[operator]


async def test_percent_is_the_threshold_and_the_score_is_the_real_one(stored: Master) -> None:
    rng = np.random.default_rng(3)
    noisy = np.clip(CROP.astype(np.int16) + rng.normal(0, 25, CROP.shape), 0, 255)
    template = png(noisy.astype(np.uint8))
    status, body = await match(stored, "image_key=/images/base.png&percent=99", template)
    assert status == 200 and body["data"]["found"] is False  # type: ignore[index]
    score = body["data"]["percent_of_match"]  # type: ignore[index]
    assert 0.5 < score < 0.99
    status, body = await match(stored, "image_key=/images/base.png&percent=50", template)
    assert status == 200
    assert body["data"] == {  # type: ignore[comparison-overlap]
        "found": True,
        "percent_of_match": score,
        "coordinates": {"x": X, "y": Y, "w": W, "h": H},
    }


async def test_image_url_on_a_cluster_node_is_read_following_the_masters_redirect(
    stored: Master,
) -> None:
    url = f"{stored.url}/get_key/images/base.png"
    status, body = await match(stored, f"image_url={url}", png(CROP))
    assert status == 200, body
    assert body["data"]["coordinates"] == {"x": X, "y": Y, "w": W, "h": H}  # type: ignore[index]


@pytest.fixture
async def outside_server() -> AsyncIterator[Callable[[], str]]:
    """A web server that is not part of the cluster, serving the base image."""

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=png(BASE), content_type="image/png")

    app = web.Application()
    app.router.add_get("/base.png", image)
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    yield lambda: f"127.0.0.1:{server.port}"
    await server.close()


async def test_image_url_elsewhere_needs_its_host_in_allowed_hosts(
    make_master: MasterFactory, outside_server: Callable[[], str]
) -> None:
    host = outside_server()
    closed = await make_master()
    status, body = await match(closed, f"image_url=http://{host}/base.png", png(CROP))
    assert status == 403 and "not allowed" in str(body["msg"])
    opened = await make_master(extensions={"allowed_hosts": f"images.example, {host}"})
    status, body = await match(opened, f"image_url=http://{host}/base.png", png(CROP))
    assert status == 200, body
    assert body["data"]["found"] is True  # type: ignore[index]


@pytest.mark.parametrize(
    "query, body, status, message",
    [
        ("image_key=/images/base.png", b"GIF89a but no", 400, "the body is not an image"),
        ("image_key=/images/base.png", b"", 400, "the body is not an image"),
        ("image_key=/images/notes.txt", None, 400, "the base image is not an image"),
        ("image_key=/images/missing.png", None, 404, "key not found: /images/missing.png"),
        ("image_key=/images/../x", None, 400, "'..' segment"),
        ("percent=90", None, 400, "give the base image as image_key="),
        ("image_key=/images/base.png&percent=0", None, 400, "'percent' must be"),
        ("image_key=/images/base.png&percent=high", None, 400, "'percent' must be"),
        ("image_url=file:///etc/passwd", None, 403, "not allowed"),
        ("image_url=http://127.0.0.1:9/x.png", None, 403, "not allowed"),
    ],
)
async def test_bad_input_is_refused_with_a_clear_message(
    stored: Master, query: str, body: bytes | None, status: int, message: str
) -> None:
    got, answer = await match(stored, query, png(CROP) if body is None else body)
    assert got == status, answer
    assert answer["status"] == "ko" and message in str(answer["msg"])


async def test_an_image_larger_than_the_base_is_400(stored: Master) -> None:
    status, body = await match(stored, "image_key=/images/base.png", png(scene(4, 500, 100)))
    assert status == 400 and "larger than the base image" in str(body["msg"])


def test_host_allowed_is_this_clusters_nodes_and_the_listed_hosts() -> None:
    nodes = ["http://127.0.0.1:31414", "http://10.0.0.7:31415"]
    assert host_allowed("http://127.0.0.1:31414/get_key/a", nodes, [])
    assert host_allowed("http://10.0.0.7:31415/x", nodes, [])
    assert not host_allowed("http://127.0.0.1:22/x", nodes, [])
    assert not host_allowed("http://10.0.0.7/x", nodes, [])
    assert not host_allowed("https://10.0.0.7/x", nodes, [])  # port 443, not 31415
    assert not host_allowed("ftp://127.0.0.1:31414/x", nodes, [])
    assert not host_allowed("http://user@evil.example:31414/x", nodes, [])
    assert host_allowed("https://images.example/a.png", [], ["images.example"])
    assert host_allowed("http://IMAGES.example:8080/a.png", [], ["images.example"])
    assert host_allowed("http://cdn.example:8080/a.png", [], ["cdn.example:8080"])
    assert not host_allowed("http://cdn.example:8081/a.png", [], ["cdn.example:8080"])
    assert not host_allowed("http://images.example.evil/a.png", [], ["images.example"])
    assert host_allowed("http://[::1]:8080/a.png", [], ["[::1]:8080"])
    assert not host_allowed("http://127.0.0.1:99999/x", nodes, ["127.0.0.1"])
