"""Fault injection: processes die, hang and fill up while writers write; no acknowledged write
is lost.

A master and three volumes (R = 2, automatic) run as real processes. A handful of writer
threads PUT through the master (following its 307 to a volume, as `curl -L` does) and record
every outcome; one reader reads acknowledged keys back meanwhile. At random moments (a fixed
seed) the test injects, one at a time:

- `kill -9` of the master, then starts it again;
- `kill -9` of a volume, then starts it again;
- SIGSTOP of the master or of a volume for a few hundred milliseconds to two seconds, then
  SIGCONT;
- a full disk: a volume is restarted with `--max-bytes` just above what it holds and filled
  by writes that need a copy on every volume (`?replicas=3`) until they are refused with 507,
  while the writers' own writes (R = 2) go on elsewhere; later it is restarted without the
  limit.

After each fault the test waits (polling, with a deadline) until the cluster is whole again.
At the end, every acknowledged write must read back, through the master and from every replica
the master lists, with the bytes of the last acknowledged write of that key (or of a later
write whose outcome the client could not know: a timeout, a dropped connection or a volume's
503, which may have been committed); a write refused cleanly (any other error) must have left
nothing visible. A table of what happened is printed.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from conftest import LOADED_TIMERS, Cluster, Proc, Volume, wait_until

SEED = 20261129
WRITERS = 4
#: Faults injected, at most; after one of each kind, the loop stops injecting once
#: `INJECT_FOR` seconds have passed.
ROUNDS = 10
INJECT_FOR = 75.0
KINDS = ("kill_master", "kill_volume", "stop_master", "stop_volume", "disk_full")
#: Room left on a volume whose disk "fills": a few values' worth.
DISK_FULL_MARGIN = 64 * 1024
#: A client gives up on a request after this long (a paused process resumes well before).
CLIENT_TIMEOUT = 15.0
SETTINGS = {
    **LOADED_TIMERS,
    # A replica that hangs is given up on (and the copy placed elsewhere) sooner than the
    # default 10 s, so that a paused volume does not hold every writer.
    "PULZAR_TIMERS_REPLICA_TIMEOUT": "3",
    "PULZAR_TIMERS_REPAIR": "1",
}


# -- what the writers saw -----------------------------------------------------------------


@dataclass
class KeyLog:
    """One key's writes, in the order a single writer made them."""

    #: The value of the last write answered 201.
    acked: bytes | None = None
    #: Values written after it whose outcome is unknown (they may have been committed).
    unknown: list[bytes] = field(default_factory=list)
    #: Writes refused cleanly (nothing may be visible of them).
    refused: int = 0

    def allowed(self) -> list[bytes]:
        return [v for v in (self.acked, *self.unknown) if v is not None]


@dataclass
class Ledger:
    keys: dict[str, KeyLog] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    #: "master: 503", "volume: 507", "volume: ReadTimeout"...: what the writers got.
    answers: Counter[str] = field(default_factory=Counter)
    #: Keys written once and never again: what the reader may read during the run.
    settled: list[tuple[str, bytes]] = field(default_factory=list)
    reads: Counter[str] = field(default_factory=Counter)
    wrong_reads: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, key: str, value: bytes, outcome: str, answer: str, once: bool) -> None:
        with self.lock:
            log = self.keys.setdefault(key, KeyLog())
            self.outcomes[outcome] += 1
            self.answers[answer] += 1
            if outcome == "acked":
                log.acked, log.unknown = value, []
                if once:
                    self.settled.append((key, value))
            elif outcome == "unknown":
                log.unknown.append(value)
            else:
                log.refused += 1


def _value(rng: random.Random, writer: int, n: int) -> bytes:
    """A recognisable value: mostly small (inline in LMDB), sometimes a file-sized one."""
    size = rng.randint(70_000, 120_000) if rng.random() < 0.05 else rng.randint(16, 4000)
    head = f"writer {writer} write {n}:".encode()
    return head + rng.randbytes(max(0, size - len(head)))


def _put(
    http: httpx.Client, master: str, key: str, value: bytes, query: str = ""
) -> tuple[str, str]:
    """One write through the 307: its outcome, `acked`, `refused` (nothing may be stored) or
    `unknown` (the client cannot tell whether it was committed), and who answered what."""
    try:
        first = http.put(f"{master}/add_key{key}{query}", content=value)
    except httpx.HTTPError as exc:
        # Without the master's ticket no volume stores anything.
        return "refused", f"master: {type(exc).__name__}"
    if first.status_code != 307:
        return "refused", f"master: {first.status_code}"
    try:
        second = http.put(first.headers["Location"], content=value)
    except httpx.HTTPError as exc:
        return "unknown", f"volume: {type(exc).__name__}"
    answer = f"volume: {second.status_code}"
    if second.status_code == 201:
        return "acked", answer
    # Any error leaves nothing visible, except a volume's 503 (or another 5xx but 507): the
    # commit may have reached the master and its answer been lost (docs/consistency.md).
    clean = second.status_code < 500 or second.status_code == 507
    return ("refused" if clean else "unknown"), answer


def _read(http: httpx.Client, master: str, key: str) -> tuple[int, bytes]:
    first = http.get(f"{master}/get_key{key}")
    if first.status_code != 307:
        return first.status_code, b""
    second = http.get(first.headers["Location"], follow_redirects=True)
    return second.status_code, second.content


def writer(n: int, master: str, ledger: Ledger, stop: threading.Event) -> None:
    """Writes new keys, and new versions of its own "hot" keys (a quarter of the writes);
    one writer per key, so the order of a key's writes is known."""
    rng = random.Random(SEED * 100 + n)
    hot: list[str] = []
    with httpx.Client(timeout=CLIENT_TIMEOUT) as http:
        i = 0
        while not stop.is_set():
            i += 1
            once = False
            if hot and rng.random() < 0.25:
                key = rng.choice(hot)
            elif rng.random() < 0.2:
                key = f"/fault/w{n}/hot{i}"
                hot.append(key)
            else:
                key, once = f"/fault/w{n}/{i}", True
            value = _value(rng, n, i)
            outcome, answer = _put(http, master, key, value)
            ledger.record(key, value, outcome, answer, once)
            if outcome != "acked":
                time.sleep(0.05)  # a client's pause before it tries again


def reader(master: str, ledger: Ledger, stop: threading.Event) -> None:
    """Reads keys written once (and acknowledged): an answer is the right bytes or an error
    (a fault may be on), never other bytes nor a 404."""
    rng = random.Random(SEED - 1)
    with httpx.Client(timeout=CLIENT_TIMEOUT) as http:
        while not stop.wait(0.01):
            with ledger.lock:
                if not ledger.settled:
                    continue
                key, value = rng.choice(ledger.settled)
            try:
                status, body = _read(http, master, key)
            except httpx.HTTPError:
                status, body = 0, b""
            with ledger.lock:
                if status == 200 and body == value:
                    ledger.reads["ok"] += 1
                elif status == 404 or status == 200:
                    ledger.reads["wrong"] += 1
                    ledger.wrong_reads.append(f"{key}: {status}, {len(body)} bytes")
                else:
                    ledger.reads["failed"] += 1


# -- faults -------------------------------------------------------------------------------


class Injector:
    """Injects one fault at a time and puts the cluster back together after it."""

    def __init__(self, cluster: Cluster, rng: random.Random, ledger: Ledger) -> None:
        self.cluster = cluster
        self.rng = rng
        self.ledger = ledger
        self.injected: Counter[str] = Counter()
        self.log: list[str] = []
        self.paused: Proc | None = None
        #: Requests a full volume refused with 507.
        self.full_refusals = 0

    def _volume(self) -> tuple[int, Volume]:
        i = self.rng.randrange(len(self.cluster.volumes))
        return i, self.cluster.volumes[i]

    def inject(self, kind: str) -> None:
        self.injected[kind] += 1
        started = time.monotonic()
        getattr(self, kind)()
        self.log.append(f"{kind} ({time.monotonic() - started:.1f} s)")

    def kill_master(self) -> None:
        self.cluster.kill_master()
        time.sleep(self.rng.uniform(0.1, 1.0))
        self.cluster.restart_master()

    def kill_volume(self) -> None:
        i, volume = self._volume()
        self.cluster.kill_volume(i)
        self.log.append(f"  killed {volume.name}")
        time.sleep(self.rng.uniform(0.1, 1.5))
        self.cluster.restart_volume(i)

    def _pause(self, proc: Proc) -> None:
        proc.send(signal.SIGSTOP)
        self.paused = proc
        try:
            time.sleep(self.rng.uniform(0.3, 2.0))
        finally:
            self.resume()

    def resume(self) -> None:
        if self.paused is not None:
            self.paused.send(signal.SIGCONT)
            self.paused = None

    def stop_master(self) -> None:
        assert self.cluster.master is not None
        self._pause(self.cluster.master)

    def stop_volume(self) -> None:
        _, volume = self._volume()
        self.log.append(f"  paused {volume.name}")
        self._pause(volume.proc)

    def disk_full(self) -> None:
        """Restart a volume with a capacity just above what it holds, fill it up while the
        writers go on, hold it full a moment; then restart it without the limit."""
        i, volume = self._volume()
        node = self.cluster.node(volume.node_id)
        assert node is not None
        capacity = int(node["used_bytes"]) + DISK_FULL_MARGIN
        plain = list(volume.proc.args)
        volume.proc.stop()
        volume.proc.args = [*plain, "--max-bytes", str(capacity)]
        try:
            self.cluster.restart_volume(i)
            self.log.append(f"  {volume.name} limited to {capacity} bytes")
            self._fill()
            time.sleep(self.rng.uniform(1.0, 3.0))  # writers meet a full volume
            refusals = self.refused_full(volume)
            self.full_refusals += refusals
            self.log.append(f"  {volume.name} answered 507 to {refusals} requests")
        finally:
            volume.proc.stop()
            volume.proc.args = plain
            self.cluster.restart_volume(i)

    def _fill(self) -> None:
        """Write values every volume must hold (`?replicas=3`) until the master refuses them
        for want of room (507): the limited volume is then full. Placement favours free
        space, so the writers' own values (R = 2) would go elsewhere and never fill it."""
        n = 0
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=CLIENT_TIMEOUT) as http:
            while time.monotonic() < deadline:
                n += 1
                key = f"/fault/fill{self.injected['disk_full']}/{n}"
                value = f"filler {n}:".encode() + random.Random(n).randbytes(16384)
                outcome, answer = _put(http, self.cluster.master_url, key, value, "?replicas=3")
                self.ledger.record(key, value, outcome, answer, once=False)
                if answer == "master: 507":
                    self.log.append(f"  full after {n} fillers of 16 KiB (R = 3)")
                    return
        raise AssertionError(f"the limited volume did not fill up: {n} fillers written")

    def refused_full(self, volume: Volume) -> int:
        """How many requests `volume` answered with 507, from its /metrics."""
        text = self.cluster.http.get(f"{volume.url}/metrics").text
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith("pulzar_requests_total{") and 'status="507"' in line
        )

    def wait_whole(self) -> None:
        """Until the master is healthy and lists every volume alive."""
        self.cluster.wait_live(len(self.cluster.volumes), timeout=60)
        wait_until(
            lambda: self.cluster.http.get(f"{self.cluster.master_url}/health").status_code == 200,
            timeout=30,
            what="the master to be healthy",
        )


def _schedule(rng: random.Random) -> list[str]:
    """Every kind once, in a random order, then the rest drawn at random (those only while
    there is time: a slow machine still gets every kind)."""
    kinds = list(KINDS)
    rng.shuffle(kinds)
    return kinds + [rng.choice(KINDS) for _ in range(ROUNDS - len(KINDS))]


# -- the test -----------------------------------------------------------------------------


@pytest.fixture
def threads() -> Iterator[Callable[..., threading.Thread]]:
    """Started threads, stopped (their `stop` event set) and joined at teardown."""
    started: list[tuple[threading.Thread, threading.Event]] = []

    def start(
        target: Callable[..., None], *args: object, stop: threading.Event
    ) -> threading.Thread:
        thread = threading.Thread(target=target, args=(*args, stop), daemon=True)
        thread.start()
        started.append((thread, stop))
        return thread

    yield start
    for _, stop in started:
        stop.set()
    for thread, _ in started:
        thread.join(CLIENT_TIMEOUT * 3)


def test_no_acknowledged_write_is_lost_to_kills_pauses_or_a_full_disk(
    cluster_factory: Callable[..., Cluster], threads: Callable[..., threading.Thread]
) -> None:
    started = time.monotonic()
    cluster = cluster_factory(volumes=3, settings=SETTINGS)
    master = cluster.master_url
    ledger = Ledger()
    rng = random.Random(SEED)
    injector = Injector(cluster, rng, ledger)
    stop = threading.Event()
    writers = [threads(writer, n, master, ledger, stop=stop) for n in range(WRITERS)]
    threads(reader, master, ledger, stop=stop)

    try:
        for round_, kind in enumerate(_schedule(rng)):
            if round_ >= len(KINDS) and time.monotonic() - started > INJECT_FOR:
                break
            time.sleep(rng.uniform(0.5, 2.0))  # a random moment during the writes
            injector.inject(kind)
            injector.wait_whole()
        time.sleep(1.0)  # writes on a whole cluster after the last fault
    finally:
        injector.resume()
        stop.set()
        for thread in writers:
            thread.join(CLIENT_TIMEOUT * 3)
    assert not any(t.is_alive() for t in writers), "a writer is stuck"
    checked_from = time.monotonic()
    injector.wait_whole()

    lost, read_failed, replica_bad, refused_visible = _verify(cluster, ledger)
    took = time.monotonic() - started
    _print_table(injector, ledger, lost, read_failed, replica_bad, refused_visible, took)
    print(f"  (verification took {time.monotonic() - checked_from:.1f} s)")
    assert ledger.outcomes["acked"] > 100, ledger.outcomes
    assert set(injector.injected) == set(KINDS), injector.injected
    assert not lost, f"acknowledged writes lost: {lost[:10]}"
    assert not read_failed, f"reads failed: {read_failed[:10]}"
    assert not replica_bad, f"replicas missing or wrong: {replica_bad[:10]}"
    assert not refused_visible, f"refused writes visible: {refused_visible[:10]}"
    assert not ledger.wrong_reads, f"wrong answers while faults were on: {ledger.wrong_reads[:10]}"


def _verify(cluster: Cluster, ledger: Ledger) -> tuple[list[str], ...]:
    """Read every key back through the master, and its acknowledged keys from each replica."""
    lost: list[str] = []
    read_failed: list[str] = []
    replica_bad: list[str] = []
    refused_visible: list[str] = []
    master = cluster.master_url
    local = threading.local()
    clients: list[httpx.Client] = []

    def http() -> httpx.Client:
        if not hasattr(local, "http"):
            local.http = httpx.Client(timeout=CLIENT_TIMEOUT)
            clients.append(local.http)
        return local.http  # type: ignore[no-any-return]

    def check(key: str, log: KeyLog) -> None:
        allowed = log.allowed()
        status, body = 0, b""
        for _ in range(5):  # a transient error (never a wrong answer) is retried
            with contextlib.suppress(httpx.HTTPError):
                status, body = _read(http(), master, key)
            if status in (200, 404):
                break
            time.sleep(0.2)
        if log.acked is None:
            if not log.unknown and status != 404:
                refused_visible.append(f"{key}: {status}")
            return
        if status == 404 or (status == 200 and body not in allowed):
            lost.append(f"{key}: {status}, {len(body)} bytes")
            return
        if status != 200:
            read_failed.append(f"{key}: {status}")
            return
        replicas = http().get(f"{master}/stat_key{key}").json()["data"]["replicas"]
        if len(replicas) < 2:
            replica_bad.append(f"{key}: {len(replicas)} replicas")
        for replica in replicas:
            # A replica serves a value once its finalize (milliseconds after the commit) is
            # through: give it a moment.
            for _ in range(10):
                direct = http().get(f"{replica['url']}/get_key{key}")
                if direct.status_code == 200 and direct.content == body:
                    break
                time.sleep(0.2)
            else:
                replica_bad.append(f"{key} on {replica['node']}: {direct.status_code}")

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(check, k, log) for k, log in ledger.keys.items()]:
            future.result()
    for client in clients:
        client.close()
    return lost, read_failed, replica_bad, refused_visible


def _print_table(
    injector: Injector,
    ledger: Ledger,
    lost: list[str],
    read_failed: list[str],
    replica_bad: list[str],
    refused_visible: list[str],
    took: float,
) -> None:
    attempted = sum(ledger.outcomes.values())
    rows = [
        *(("faults injected: " + kind, injector.injected[kind]) for kind in KINDS),
        ("writes attempted", attempted),
        ("writes acknowledged (201)", ledger.outcomes["acked"]),
        ("writes refused cleanly", ledger.outcomes["refused"]),
        ("writes failed, outcome unknown", ledger.outcomes["unknown"]),
        ("requests a full volume answered 507", injector.full_refusals),
        ("keys written", len(ledger.keys)),
        ("acknowledged writes lost", len(lost)),
        ("reads failed (at the end)", len(read_failed)),
        ("replicas missing or wrong (at the end)", len(replica_bad)),
        ("refused writes visible", len(refused_visible)),
        ("reads during faults: right bytes", ledger.reads["ok"]),
        ("reads during faults: failed (an error)", ledger.reads["failed"]),
        ("reads during faults: wrong bytes or 404", ledger.reads["wrong"]),
    ]
    print(f"\nfault injection, seed {SEED}, {took:.0f} s:")
    for line in injector.log:
        print(f"  {line}")
    answers = ", ".join(f"{a} x{n}" for a, n in sorted(ledger.answers.items()))
    print(f"  answers: {answers}")
    width = max(len(name) for name, _ in rows)
    print(f"  {'-' * width}  {'-' * 6}")
    for name, count in rows:
        print(f"  {name:<{width}}  {count:>6}")
