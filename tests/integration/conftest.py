"""Real `pulzar` processes on 127.0.0.1 for the integration tests.

Every process is started with `sys.executable -m pulzar ...` on a free port, with its data in
the test's temporary directory, a cluster secret, fast timers and no access log; its output goes
to a log file that is printed when the test fails. Fixtures stop every process they started, by
PID (a paused one is resumed first), whatever the test did.

    def test_something(cluster_factory):
        cluster = cluster_factory(volumes=2)          # started, volumes registered
        cluster.put("/a", b"x")                       # through the 307, like curl -L
        cluster.kill_volume(0)                        # kill -9
        cluster.restart_volume(0)                     # same port, data and node id
        cluster.wait_live(2)

Waiting is always polling with a deadline (`wait_until`), never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from processes import HOST, PYTHON, Proc, ProcessDied, free_ports, pulzar_env, wait_until

# Waiting, ports, the environment and processes are shared with tests/dashboard (processes.py);
# the names stay importable from here (`from conftest import wait_until`).
__all__ = ["HOST", "PYTHON", "Proc", "ProcessDied", "free_ports", "pulzar_env", "wait_until"]

#: Timers for tests that watch nodes die and come back.
FAST_TIMERS = {
    "PULZAR_TIMERS_HEARTBEAT": "0.1",
    "PULZAR_TIMERS_SUSPECT_AFTER": "0.3",
    "PULZAR_TIMERS_DEAD_AFTER": "0.6",
    "PULZAR_TIMERS_TTL_SWEEP": "0.2",
    "PULZAR_TIMERS_RECONNECT": "0.1",
}
#: Timers for tests that load two cores flat out: heartbeats still fast, but a busy event loop
#: must not make a healthy node look dead.
LOADED_TIMERS = {
    **FAST_TIMERS,
    "PULZAR_TIMERS_HEARTBEAT": "0.2",
    "PULZAR_TIMERS_SUSPECT_AFTER": "2",
    "PULZAR_TIMERS_DEAD_AFTER": "4",
}


@dataclass
class Volume:
    proc: Proc
    port: int
    name: str
    data: Path
    node_id: str = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass
class Cluster:
    """A master and volumes as real processes. Build it with the `cluster_factory` fixture."""

    root: Path
    secret: str
    settings: dict[str, str]
    master: Proc | None = None
    master_port: int = 0
    volumes: list[Volume] = field(default_factory=list)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    # -- life cycle -----------------------------------------------------------------------

    @property
    def master_url(self) -> str:
        return f"http://{HOST}:{self.master_port}"

    def env(self, secret: str | None = None) -> dict[str, str]:
        return pulzar_env({**self.settings, "PULZAR_CLUSTER_SECRET": secret or self.secret})

    def log_path(self, name: str) -> Path:
        """Logs live outside the data directory (which teardown removes), so they outlive it."""
        logs = self.root.parent / "logs"
        logs.mkdir(exist_ok=True)
        return logs / f"{self.root.name}-{name}.log"

    def start_master(self) -> Proc:
        self.master_port = self.master_port or free_ports()
        self.master = Proc(
            "master",
            ["master", "--port", str(self.master_port), "--data", str(self.root / "master")],
            self.env(),
            self.log_path("master"),
            self.root,
        )
        self.master.start()
        self.wait_master_up()
        return self.master

    def wait_master_up(self, timeout: float = 20.0) -> None:
        """Until the master answers /health (200 or 503: it is serving)."""
        assert self.master is not None

        def up() -> bool:
            self.master.check_alive()  # type: ignore[union-attr]
            return self.http.get(f"{self.master_url}/health", timeout=1).status_code in (200, 503)

        wait_until(up, timeout=timeout, what="the master to answer /health")

    def kill_master(self) -> None:
        assert self.master is not None
        self.master.kill9()

    def restart_master(self) -> None:
        """Start the master again on the same port, data directory and secret."""
        assert self.master is not None
        self.master.start()
        self.wait_master_up()

    def add_volume(
        self,
        *,
        secret: str | None = None,
        max_bytes: int | None = None,
        wait: bool = True,
    ) -> Volume:
        """Start one more volume (named vol1, vol2, ...); by default wait until it is live."""
        n = len(self.volumes) + 1
        port = free_ports()
        name = f"vol{n}"
        data = self.root / f"volume{n}"
        args = [
            "volume",
            "--master",
            self.master_url,
            "--port",
            str(port),
            "--data",
            str(data),
            "--name",
            name,
        ]
        if max_bytes is not None:
            args += ["--max-bytes", str(max_bytes)]
        proc = Proc(name, args, self.env(secret), self.log_path(name), self.root)
        volume = Volume(proc, port, name, data)
        self.volumes.append(volume)
        proc.start()
        if wait:
            self.wait_volume_live(volume)
        return volume

    def volume_health(self, volume: Volume) -> httpx.Response:
        return self.http.get(f"{volume.url}/health", timeout=1)

    def wait_volume_live(self, volume: Volume, timeout: float = 20.0) -> dict[str, Any]:
        """Until the volume says it is registered and the master lists it alive."""

        def live() -> dict[str, Any] | None:
            volume.proc.check_alive()
            health = self.volume_health(volume)
            if health.status_code != 200:
                return None
            volume.node_id = health.json()["data"]["node"]
            node = self.node(volume.node_id)
            return node if node is not None and node["synch"] else None

        return wait_until(live, timeout=timeout, what=f"{volume.name} to be live")  # type: ignore[no-any-return]

    def kill_volume(self, i: int) -> Volume:
        """kill -9 volume `i` (0-based)."""
        volume = self.volumes[i]
        volume.proc.kill9()
        return volume

    def restart_volume(self, i: int, wait: bool = True) -> Volume:
        volume = self.volumes[i]
        volume.proc.start()
        if wait:
            self.wait_volume_live(volume)
        return volume

    def procs(self) -> list[Proc]:
        return [p for p in [self.master, *(v.proc for v in self.volumes)] if p is not None]

    def close(self) -> None:
        for proc in reversed(self.procs()):
            proc.stop()
        self.http.close()

    # -- the master's view ----------------------------------------------------------------

    def network(self) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.master_url}/admin/network", timeout=2)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def node(self, id_or_name: str) -> dict[str, Any] | None:
        response = self.http.get(f"{self.master_url}/admin/network/{id_or_name}", timeout=2)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])

    def live_count(self) -> int:
        return sum(1 for n in self.network() if n["synch"])

    def wait_live(self, count: int, timeout: float = 20.0) -> None:
        """Until exactly `count` volumes are alive in /admin/network."""
        wait_until(
            lambda: self.live_count() == count, timeout=timeout, what=f"{count} live volumes"
        )

    # -- keys through the redirect, as curl -L does it ------------------------------------

    def url(self, route: str, key: str = "") -> str:
        """`url("add_key", "/a/b")` -> http://127.0.0.1:P/add_key/a/b"""
        return f"{self.master_url}/{route.strip('/')}{key}"

    def put(self, key: str, data: bytes, query: str = "") -> httpx.Response:
        """PUT to the master, then to the volume its 307 names; the volume's answer."""
        first = self.http.put(self.url("add_key", key) + query, content=data)
        if first.status_code != 307:
            return first
        return self.http.put(first.headers["Location"], content=data)

    def get(self, key: str) -> httpx.Response:
        first = self.http.get(self.url("get_key", key))
        if first.status_code != 307:
            return first
        return self.http.get(first.headers["Location"])

    def stat(self, key: str) -> dict[str, Any]:
        response = self.http.get(self.url("stat_key", key))
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])


def _print_logs(procs: list[Proc]) -> None:
    for proc in procs:
        print(f"==== log of {proc.name} (pid {proc.popen.pid if proc.popen else '-'})")
        print(proc.log_tail(60))


# -- fixtures -----------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(request.node, f"rep_{when}", None) is not None
        and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )


@pytest.fixture
def cluster_factory(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Cluster]]:
    """`cluster_factory(volumes=2, settings={...}, loaded=False)`: a started cluster whose
    volumes are live.

    `settings` are PULZAR_* environment variables for every process, over `FAST_TIMERS`, or
    `LOADED_TIMERS` with `loaded=True` (for tests that keep both cores busy). The processes
    are stopped and the data directories removed at teardown.
    """
    clusters: list[Cluster] = []

    def start(
        volumes: int = 2,
        settings: dict[str, str] | None = None,
        secret: str = "",
        loaded: bool = False,
    ) -> Cluster:
        root = tmp_path / f"cluster{len(clusters) + 1}"
        root.mkdir()
        cluster = Cluster(
            root,
            secret or f"test-secret-{random.getrandbits(64):x}",
            {**(LOADED_TIMERS if loaded else FAST_TIMERS), **(settings or {})},
        )
        clusters.append(cluster)
        cluster.start_master()
        for _ in range(volumes):
            cluster.add_volume()
        cluster.wait_live(volumes)
        return cluster

    yield start
    procs = [p for c in clusters for p in c.procs()]
    for cluster in clusters:
        cluster.close()
        shutil.rmtree(cluster.root, ignore_errors=True)
    if _failed(request):
        _print_logs(procs)


@dataclass
class UpCluster:
    """A `pulzar up` process (in its own session, like a terminal job) and its children."""

    popen: subprocess.Popen[bytes]
    port: int
    volumes: int
    log: Path
    children: list[psutil.Process] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_up(self, timeout: float = 30.0) -> None:
        def up() -> bool:
            if self.popen.poll() is not None:
                raise ProcessDied(f"pulzar up exited with {self.popen.returncode}:\n{self.tail()}")
            body = httpx.get(f"{self.master_url}/health", timeout=1).json()
            return bool(body["data"]["live_volumes"] == self.volumes)

        wait_until(up, timeout=timeout, what="pulzar up to have its volumes live")
        servers = psutil.Process(self.popen.pid).children()
        assert len(servers) == self.volumes + 1, servers
        self.refresh_children()

    def refresh_children(self) -> None:
        """Remember every descendant (servers and their worker processes) to check later
        that none outlives `pulzar up`."""
        with contextlib.suppress(psutil.NoSuchProcess):
            known = {c.pid for c in self.children}
            for child in psutil.Process(self.popen.pid).children(recursive=True):
                if child.pid not in known:
                    self.children.append(child)

    def stop(self, sig: int = signal.SIGTERM, group: bool = False, timeout: float = 30) -> float:
        """Send `sig` to `pulzar up` (or, `group`, to its whole process group, as Ctrl-C in a
        terminal does) and wait for it; the seconds it took."""
        self.refresh_children()
        started = time.monotonic()
        if group:
            os.killpg(self.popen.pid, sig)
        else:
            self.popen.send_signal(sig)
        self.popen.wait(timeout)
        return time.monotonic() - started

    def alive_children(self) -> list[psutil.Process]:
        alive = []
        for child in self.children:
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
        return alive

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def cleanup(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        for child in self.alive_children():
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def start_up(
    directory: Path, volumes: int = 2, settings: dict[str, str] | None = None
) -> UpCluster:
    """Start `python -m pulzar up --data DIR/data --port FREE` and wait until it is live."""
    port = free_ports(volumes + 1)
    log = directory / "up.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "pulzar",
                "up",
                "--data",
                str(directory / "data"),
                "--port",
                str(port),
                "--volumes",
                str(volumes),
            ],
            env=pulzar_env({**FAST_TIMERS, **(settings or {})}),
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    up = UpCluster(popen, port, volumes, log)
    try:
        up.wait_up()
    except BaseException:
        up.cleanup()
        raise
    return up


@pytest.fixture
def pulzar_up(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., UpCluster]]:
    """`pulzar_up(volumes=2)`: a started `pulzar up` whose volumes are live.

    The test gives it no secret: `pulzar up` makes one and hands it to its volumes.
    Stopped (SIGTERM, then SIGKILL, by PID) at teardown if the test did not stop it.
    """
    started: list[UpCluster] = []

    def start(volumes: int = 2, settings: dict[str, str] | None = None) -> UpCluster:
        directory = tmp_path / f"up{len(started) + 1}"
        directory.mkdir()
        up = start_up(directory, volumes, settings)
        started.append(up)
        return up

    yield start
    for up in started:
        up.cleanup()
        if _failed(request):
            print(f"==== log of pulzar up on port {up.port}")
            print(up.tail())
        shutil.rmtree(up.log.parent / "data", ignore_errors=True)


@pytest.fixture(scope="module")
def shared_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpCluster]:
    """One `pulzar up` for a whole test module. At the end it is stopped with SIGTERM, and the
    teardown fails unless it exits with 0 and leaves no child process behind."""
    directory = tmp_path_factory.mktemp("shared-up")
    up = start_up(directory)
    yield up
    try:
        took = up.stop(signal.SIGTERM)
        assert up.popen.returncode == 0, f"pulzar up exited with {up.popen.returncode}"
        assert not up.alive_children(), f"left behind: {up.alive_children()}"
        assert took < 8, f"pulzar up took {took:.1f} s to stop"
    except BaseException:
        print(up.tail())
        raise
    finally:
        up.cleanup()
        shutil.rmtree(directory / "data", ignore_errors=True)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """`wait_until(check, timeout=..., what=...)`: poll with a deadline (see the function)."""
    return wait_until


@pytest.fixture(name="free_ports")
def free_ports_fixture() -> Callable[[int], int]:
    """`free_ports(n)`: the first of n consecutive free ports on 127.0.0.1."""
    return free_ports


@pytest.fixture
def run_pulzar() -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """`run_pulzar(args, settings, cwd=...)`: run `python -m pulzar ARGS` to its end (30 s at
    most) with a clean environment plus fast timers and `settings`; output captured."""

    def run(
        args: list[str], settings: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [PYTHON, "-m", "pulzar", *args],
            env=pulzar_env({**FAST_TIMERS, **(settings or {})}),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )

    return run


# -- curl ---------------------------------------------------------------------------------


@dataclass
class CurlResult:
    status: int
    body: bytes
    stderr: str

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def run_curl(args: list[str], timeout: float = 120) -> CurlResult:
    """Run the real curl with `args` (as a user would type them) plus `-sS` and a write-out
    of the final status; the body of the last answer and that status."""
    assert shutil.which("curl"), "these tests need the curl binary"
    done = subprocess.run(
        ["curl", "-sS", *args, "-w", "\n%{http_code}"],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"curl {args} failed ({done.returncode}): {done.stderr!r}"
    body, _, status = done.stdout.rpartition(b"\n")
    return CurlResult(int(status), body, done.stderr.decode(errors="replace"))


@pytest.fixture
def curl() -> Callable[..., CurlResult]:
    return run_curl


# -- measuring ----------------------------------------------------------------------------


class RssSampler:
    """Samples the RSS of some processes in a thread (`with RssSampler(pids) as s: ...`);
    `s.peak` maps each pid to its largest RSS in bytes."""

    def __init__(self, pids: list[int], interval: float = 0.05) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.peak = {p.pid: 0 for p in self.procs}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for proc in self.procs:
                with contextlib.suppress(psutil.Error):
                    rss = proc.memory_info().rss
                    self.peak[proc.pid] = max(self.peak[proc.pid], rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts the bytes clients send through it to `upstream`.

    Put in front of the master, it shows how much of an upload the master was sent.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.sent_upstream = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection((HOST, self.upstream_port))
            self._sockets += [client, upstream]
            self.connections += 1
            for src, dst, counted in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pump, args=(src, dst, counted), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while data := src.recv(65536):
                if counted:
                    with self._lock:
                        self.sent_upstream += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self._accepter.join()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        for sock in self._sockets:
            sock.close()


@pytest.fixture
def counting_proxy() -> Iterator[Callable[[int], CountingProxy]]:
    proxies: list[CountingProxy] = []

    def make(upstream_port: int) -> CountingProxy:
        proxy = CountingProxy(upstream_port)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def rss_sampler() -> type[RssSampler]:
    return RssSampler
