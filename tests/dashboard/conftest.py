"""A real cluster and a real headless browser for the dashboard tests.

One cluster for the whole directory: a master and two volumes, each `python -m pulzar ...` on a
free port of 127.0.0.1, data in a temporary directory, a shared cluster secret, fast timers,
and a job directory holding the `demo/*` jobs below. Tests use their own key prefixes and job
ids, so they do not step on each other. Every process is stopped by its PID at the end.

The browser is Debian's chromium (`apt-get install chromium`) driven by Playwright for Python;
Playwright's own browser downloads are never used. Each test gets a fresh browser context
(`page`), and fails if the page raised a JavaScript error.

Waiting is polling with a deadline (`wait_until`, Playwright's `expect`), never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright
from processes import HOST, Proc, free_ports, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = ViewportSize(width=1360, height=860)
GUARD_TOKEN = "dashboard-read-write-token"
GUARD_ADMIN_TOKEN = "dashboard-admin-token"
#: How long Playwright's `expect` polls before failing (its default, 5 s, is short for a
#: loaded CI machine; the page itself refreshes every 1.5 s).
expect.set_options(timeout=15_000)

FAST_TIMERS = {
    "PULZAR_TIMERS_HEARTBEAT": "0.1",
    "PULZAR_TIMERS_SUSPECT_AFTER": "1",
    "PULZAR_TIMERS_DEAD_AFTER": "2",
    "PULZAR_TIMERS_TTL_SWEEP": "0.2",
    "PULZAR_TIMERS_RECONNECT": "0.1",
}

JOBS = {
    "demo/hello.py": '''"""Says hello.

Description: greets someone and counts the letters of the name
Arguments: name
Category: demo
Author: dashboard tests
"""


def run(params, ctx):
    name = params.get("name", "world")
    print(f"hello, {name}!")
    ctx.log.info("greeted %s", name)
    return {"greeting": f"hello, {name}!", "letters": len(name)}
''',
    "demo/fail.py": '''"""Description: always fails, to show a failed run
Category: demo
"""


def run(params, ctx):
    raise RuntimeError("this job fails on purpose")
''',
    "demo/sleep.py": '''"""Description: sleeps for `seconds`
Arguments: seconds
Category: demo
"""
import time


def run(params, ctx):
    time.sleep(float(params.get("seconds", 1)))
    return {"slept": params.get("seconds", 1)}
''',
}


@dataclass
class DashboardCluster:
    root: Path
    master_port: int
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def master_url(self) -> str:
        return f"http://{HOST}:{self.master_port}"

    @property
    def ui_url(self) -> str:
        return f"{self.master_url}/ui"

    @property
    def admin_token(self) -> str:
        return self.env.get("PULZAR_SECURITY_ADMIN_TOKEN", "")

    def start(self, name: str, *args: str) -> Proc:
        proc = Proc(name, list(args), self.env, self.root / f"{name}.log", self.root)
        proc.start()
        self.procs.append(proc)
        return proc

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """`python -m pulzar ARGS --master URL` to its end."""
        return subprocess.run(
            [sys.executable, "-m", "pulzar", *args, "--master", self.master_url],
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )

    def api(self, path: str) -> Any:
        """GET a master JSON route; its `data`."""
        answer = self.http.get(self.master_url + path)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    def get(self, key: str) -> httpx.Response:
        """GET a key through the master's 307, as `curl -L` does."""
        return self.http.get(f"{self.master_url}/get_key{key}", follow_redirects=True)

    def put(self, key: str, data: bytes) -> None:
        first = self.http.put(f"{self.master_url}/add_key{key}", content=data)
        assert first.status_code == 307, first.text
        answer = self.http.put(first.headers["Location"], content=data)
        assert answer.status_code == 201, answer.text

    def launch(self, name: str, body: dict[str, Any]) -> int:
        answer = self.http.post(f"{self.master_url}/launch_job/{name}", json=body)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["data"]["job_id"])

    def job_status(self, job_id: int) -> str:
        return str(self.api(f"/admin/jobs/{job_id}")["status"])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.http.close()


@contextlib.contextmanager
def running_cluster(
    root: Path, settings: dict[str, str] | None = None
) -> Iterator[DashboardCluster]:
    """A master and two live volumes, as real processes, with the `demo/*` jobs; stopped
    (by PID) and removed on exit. `settings`: more PULZAR_* variables for every process."""
    jobs = root / "jobs"
    for name, source in JOBS.items():
        (jobs / name).parent.mkdir(parents=True, exist_ok=True)
        (jobs / name).write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULZAR_")}
    env.update(FAST_TIMERS)
    env.update(
        {
            "PULZAR_CLUSTER_SECRET": f"dashboard-test-{random.getrandbits(64):x}",
            "PULZAR_JOBS_DIR": str(jobs),
            "PULZAR_JOBS_WORKERS": "2",
            "PULZAR_SERVER_ACCESS_LOG": "false",
            **(settings or {}),
        }
    )
    cluster = DashboardCluster(root, free_ports(), env)
    try:
        master = cluster.start(
            "master", "master", "--port", str(cluster.master_port), "--data", str(root / "master")
        )

        def master_up() -> bool:
            master.check_alive()
            answer = cluster.http.get(cluster.master_url + "/health", timeout=1)
            return answer.status_code in (200, 503)

        token = env.get("PULZAR_SECURITY_ADMIN_TOKEN") or env.get("PULZAR_SECURITY_TOKEN")
        if token:
            cluster.http.headers["Authorization"] = f"Bearer {token}"

        wait_until(master_up, timeout=30, what="the master to answer /health")
        volumes = [
            cluster.start(
                f"vol{n}",
                "volume",
                "--master",
                cluster.master_url,
                "--port",
                str(free_ports()),
                "--data",
                str(root / f"volume{n}"),
                "--name",
                f"vol{n}",
            )
            for n in (1, 2)
        ]

        def volumes_live() -> bool:
            for volume in volumes:
                volume.check_alive()
            nodes = cluster.api("/admin/network")
            return sum(1 for node in nodes if node["synch"]) == 2

        wait_until(volumes_live, timeout=30, what="two live volumes")
        yield cluster
    except BaseException:
        for proc in cluster.procs:
            print(f"==== {proc.name} (pid {proc.pid})")
            print(proc.log.read_text(errors="replace")[-4000:])
        raise
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardCluster]:
    """The cluster shared by every dashboard test."""
    with running_cluster(tmp_path_factory.mktemp("dashboard")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def guarded_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardCluster]:
    """A cluster that needs `GUARD_TOKEN` for reads and writes and `GUARD_ADMIN_TOKEN` to run
    jobs (its `http` client sends the admin token)."""
    settings = {
        "PULZAR_SECURITY_TOKEN": GUARD_TOKEN,
        "PULZAR_SECURITY_ADMIN_TOKEN": GUARD_ADMIN_TOKEN,
    }
    with running_cluster(tmp_path_factory.mktemp("guarded"), settings) as cluster:
        yield cluster


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[DashboardCluster]:
    """A cluster of the test's own (holding only what the test puts in it)."""
    with running_cluster(tmp_path / "cluster") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless chromium. Skipped where it is not installed, except on CI (`CI` set).

    Module-scoped: Playwright's sync API runs an event loop in this thread while it lives,
    which the asyncio tests of other directories must not find running."""
    if not os.path.exists(CHROMIUM):
        message = f"no chromium at {CHROMIUM}: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (its own context: storage, downloads) that fails the test on JS errors."""
    context = browser.new_context(accept_downloads=True, viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The console tells of Content-Security-Policy violations too; failed requests (a 401
    # before the token is given, a 404 the test asked for) are expected and left out.
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
