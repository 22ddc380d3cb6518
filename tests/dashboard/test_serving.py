"""The master serves the dashboard's files, and nothing else, under /ui; a volume lets the
dashboard's origin (and no other) read and write through CORS."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from pulzar.http.cors import dashboard_origins
from pulzar.master.web_routes import WEB_DIR, web_assets

HOST = "127.0.0.1"


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET `target` exactly as written (no client normalises `..` away); status and body."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_ui_and_ui_slash_serve_the_page(cluster: Any) -> None:
    page = (WEB_DIR / "index.html").read_bytes()
    for path in ("/ui", "/ui/", "/ui/index.html"):
        answer = cluster.http.get(cluster.master_url + path)
        assert answer.status_code == 200, path
        assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
        assert answer.content == page
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_served_with_their_content_type(
    cluster: Any, name: str, content_type: str
) -> None:
    answer = cluster.http.get(f"{cluster.master_url}/ui/{name}")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == content_type
    assert answer.content == (WEB_DIR / name).read_bytes()


def test_an_unchanged_asset_is_revalidated_with_a_304(cluster: Any) -> None:
    first = cluster.http.get(f"{cluster.master_url}/ui/app.js")
    again = cluster.http.get(
        f"{cluster.master_url}/ui/app.js",
        headers={"If-None-Match": first.headers["ETag"]},
    )
    assert first.headers["Cache-Control"] == "no-cache"
    assert again.status_code == 304


@pytest.mark.parametrize(
    "target",
    [
        "/ui/../pyproject.toml",
        "/ui/..%2Fmaster%2Fserver.py",
        "/ui/%2e%2e/master/server.py",
        "/ui/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/ui/..\\..\\pyproject.toml",
        "/ui//etc/passwd",
        "/ui/nothing-here.js",
        "/ui/.hidden",
    ],
)
def test_nothing_outside_the_web_directory_is_served(cluster: Any, target: str) -> None:
    status, body = raw_get(cluster.master_port, target)
    assert status == 404, (target, body[:200])
    assert b"[build-system]" not in body and b"def create_app" not in body


def test_only_plain_files_of_known_types_are_listed(tmp_path: Any) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "app.js").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / ".secret.js").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.js").write_text("")
    assert sorted(web_assets(tmp_path)) == ["app.js", "index.html"]


def test_the_package_ships_every_file_the_page_loads() -> None:
    pages = {"index.html", "app.js", "api.js", "dom.js", "live.js", "style.css", "favicon.svg"}
    pages |= {"overview.js", "keys.js", "jobs.js"}
    assert pages <= set(web_assets())


# -- CORS on the volumes ---------------------------------------------------------------------


def test_dashboard_origins_are_the_masters_and_its_loopback_aliases() -> None:
    assert dashboard_origins("http://127.0.0.1:31414") == {
        "http://127.0.0.1:31414",
        "http://localhost:31414",
        "http://[::1]:31414",
    }
    assert dashboard_origins("https://pulzar.example.org/") == {"https://pulzar.example.org"}
    assert dashboard_origins("http://10.0.0.5:80") == {"http://10.0.0.5"}


def _volume_url(cluster: Any) -> str:
    return str(cluster.api("/admin/network")[0]["url"])


def test_volume_answers_the_dashboards_preflight_for_a_put(cluster: Any) -> None:
    answer = cluster.http.options(
        f"{_volume_url(cluster)}/add_key/dash/cors.txt?t=x",
        headers={
            "Origin": cluster.master_url,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == cluster.master_url
    assert "PUT" in answer.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in answer.headers["Access-Control-Allow-Headers"]


def test_volume_refuses_cors_to_any_other_origin(cluster: Any) -> None:
    volume = _volume_url(cluster)
    preflight = cluster.http.options(
        f"{volume}/add_key/dash/cors.txt",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    cluster.put("/dash/cors-other.txt", b"x")
    read = cluster.http.get(
        f"{cluster.master_url}/get_key/dash/cors-other.txt",
        headers={"Origin": "http://evil.example"},
        follow_redirects=True,
    )
    assert read.status_code == 200
    assert "Access-Control-Allow-Origin" not in read.headers


def test_volume_reads_and_errors_carry_cors_headers_for_the_dashboard(cluster: Any) -> None:
    cluster.put("/dash/cors.txt", b"shared")
    origin = {"Origin": cluster.master_url}
    read = cluster.http.get(
        f"{cluster.master_url}/get_key/dash/cors.txt", headers=origin, follow_redirects=True
    )
    assert read.content == b"shared"
    assert read.headers["Access-Control-Allow-Origin"] == cluster.master_url
    assert "ETag" in read.headers["Access-Control-Expose-Headers"]
    refused = cluster.http.put(f"{_volume_url(cluster)}/add_key/dash/x?t=bad", headers=origin)
    assert refused.status_code in (400, 401, 403)
    assert refused.headers["Access-Control-Allow-Origin"] == cluster.master_url
