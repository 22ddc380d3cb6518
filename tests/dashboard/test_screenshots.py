"""Screenshots of each page with data in the cluster: the README's pictures.

They are written to the test's temporary directory, or, with `PULZAR_DASHBOARD_SCREENSHOTS=DIR`
set, to DIR (refresh the committed ones with
`PULZAR_DASHBOARD_SCREENSHOTS=docs/img python -m pytest tests/dashboard -k screenshots`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

KEYS = {
    "/configs/app.toml": b'debug = false\nworkers = 8\n[db]\nurl = "postgres://db/app"\n',
    "/configs/feature-flags.json": b'{"new_checkout": true, "beta_search": false}\n',
    "/configs/nginx/site.conf": b"server { listen 80; }\n" * 40,
    "/images/logo.png": bytes(range(256)) * 180,
    "/images/banner.jpg": bytes(range(256)) * 2900,
    "/logs/2026-11-28.log": b"GET /index.html 200\n" * 9000,
    "/logs/2026-11-29.log": b"GET /index.html 200\n" * 5200,
    "/reports/q3.pdf": b"%PDF-1.7\n" + bytes(1_400_000),
    "/reports/q4-draft.pdf": b"%PDF-1.7\n" + bytes(310_000),
}


def populate(cluster: Any) -> None:
    for key, value in KEYS.items():
        cluster.put(key, value)
    ready = [cluster.launch("demo/hello", {"name": name}) for name in ("ada", "grace", "linus")]
    failed = cluster.launch("demo/fail", {})
    cluster.launch(
        "demo/hello",
        {"name": "cron", "scheduled": {"interval": "hours", "time_unit": 1, "repeat": 1}},
    )
    for job_id in ready:
        _wait_status(cluster, job_id, "ready")
    _wait_status(cluster, failed, "failed")
    running = cluster.launch("demo/sleep", {"seconds": 120})
    _wait_status(cluster, running, "running")


def _wait_status(cluster: Any, job_id: int, status: str) -> None:
    deadline = time.monotonic() + 30
    while cluster.job_status(job_id) != status:
        assert time.monotonic() < deadline, f"job {job_id} never became {status}"
        time.sleep(0.05)


def _shoot(page: Page, directory: Path, name: str) -> Path:
    page.mouse.move(0, 0)  # no hover highlight, no focus ring in the picture
    page.evaluate("document.activeElement && document.activeElement.blur()")
    path = directory / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes().startswith(PNG_MAGIC)
    return path


def test_screenshots_of_each_page(page: Page, fresh_cluster: Any, tmp_path: Path) -> None:
    directory = Path(os.environ.get("PULZAR_DASHBOARD_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    populate(fresh_cluster)

    page.goto(fresh_cluster.ui_url + "#overview")
    expect(page.locator("#nodes tr")).to_have_count(2)
    expect(page.locator("#stat-keys")).to_have_text(str(len(KEYS)))
    shots = [_shoot(page, directory, "overview")]

    page.goto(fresh_cluster.ui_url + "#keys")
    expect(page.locator("#keys tr")).to_have_count(len(KEYS))
    page.get_by_role("button", name="/configs/app.toml").click()
    expect(page.locator("#key-replicas li")).to_have_count(2)
    shots.append(_shoot(page, directory, "keys"))

    page.goto(fresh_cluster.ui_url + "#jobs")
    expect(page.locator("#jobs tr")).to_have_count(5)
    page.locator("#launch-job").select_option("demo/hello")
    page.locator("#launch-params").fill('{"name": "world"}')
    shots.append(_shoot(page, directory, "jobs"))

    assert all(shot.stat().st_size > 10_000 for shot in shots)
