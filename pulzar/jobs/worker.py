"""A warm worker process: it imports Pulzar once, then runs jobs one after the other.

The parent (`pool.WorkerPool`) sends `["run", spec]` over a pipe; the worker answers
`["started", id, time]` and then `["done", id, outcome]` (JSON messages, orjson). Job code
arrives as source text with its digest, once: it is compiled once per digest, and later specs
of the same digest come without it; each run executes it in a fresh module namespace.
stdout, stderr and the job's logger are captured into the run's log.

A job is either `run(params, ctx)`, or (the original's form) a class named after the file,
capitalised, constructed with the parameters, whose `execute()` gives the result.
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import sys
import time
import traceback
import types
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import orjson


@dataclass
class JobContext:
    """What a job gets besides its parameters."""

    #: The run's id.
    job_id: int
    #: The job's name, `group/name`.
    name: str
    #: Local path of the `pulzar_data` value when this node holds it, else None.
    data_path: str | None
    #: The job's logger: what it logs goes into the run's log.
    log: logging.Logger
    #: The master's URL (`ctx.client` talks to it).
    master_url: str
    #: How many times this job has been started (1 on the first run).
    attempt: int = 1
    _client: Any = None

    @property
    def client(self) -> Any:
        """A `pulzar.client.Client` for the cluster, made on first use."""
        if self._client is None:
            from pulzar.client import Client

            self._client = Client(self.master_url)
        return self._client


class _Capture(io.StringIO):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def text(self) -> str:
        value = self.getvalue()
        if len(value) > self.limit:
            return "[... earlier output cut ...]\n" + value[-self.limit :]
        return value


#: The handler of the job logger, pointed at each run's capture in turn.
_HANDLER = logging.StreamHandler()


def _entry(module: types.ModuleType, name: str) -> Any:
    run = getattr(module, "run", None)
    if callable(run):
        return lambda params, ctx: run(params, ctx)
    cls = getattr(module, name.split("/")[1].capitalize(), None)
    if isinstance(cls, type) and callable(getattr(cls, "execute", None)):
        return lambda params, ctx: cls(params).execute()
    execute = getattr(module, "execute", None)
    if callable(execute):
        return lambda params, ctx: execute(params)
    raise LookupError(
        f"{name} defines no run(params, ctx), no class {name.split('/')[1].capitalize()} "
        "with execute(), and no execute(params)"
    )


def run_job(spec: dict[str, Any], compiled: dict[str, types.CodeType]) -> dict[str, Any]:
    """Run one job in this process; never raises (a failure is the outcome)."""
    digest = spec["code_hash"]
    if digest not in compiled:
        compiled[digest] = compile(spec["code"], f"<job {spec['name']}>", "exec")
    module = types.ModuleType(spec["name"].replace("/", "."))
    capture = _Capture(spec.get("max_log", 65536))
    # One logger for every run of this process: a logger a run (named after the job id) would
    # stay in logging's registry for good, and each setLevel() walks the whole registry.
    logger = logging.getLogger("pulzar.job")
    _HANDLER.setStream(capture)
    logger.handlers[:] = [_HANDLER]
    if logger.level != logging.INFO:
        logger.setLevel(logging.INFO)
    logger.propagate = False
    ctx = JobContext(
        job_id=spec["id"],
        name=spec["name"],
        data_path=spec.get("data_path"),
        log=logger,
        master_url=spec.get("master_url", ""),
        attempt=spec.get("attempt", 1),
    )
    ok, result, error = True, None, None
    with contextlib.redirect_stdout(capture), contextlib.redirect_stderr(capture):
        try:
            exec(compiled[digest], module.__dict__)
            result = _entry(module, spec["name"])(spec["params"], ctx)
        except BaseException as exc:  # a job may raise anything, SystemExit included
            ok, result, error = False, None, f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
    if ok:
        try:
            orjson.dumps(result)
        except TypeError as exc:
            ok, result, error = False, None, f"result is not JSON-able: {exc}"
    if ctx._client is not None:
        with contextlib.suppress(Exception):
            ctx._client.close()
    logger.handlers.clear()
    return {"ok": ok, "result": result, "error": error, "log": capture.text()}


def main(conn: Connection) -> None:
    """The worker's loop (the target of the child process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    compiled: dict[str, types.CodeType] = {}
    while True:
        try:
            message = orjson.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if message[0] != "run":
            return
        spec = message[1]
        started = time.time()
        conn.send_bytes(orjson.dumps(["started", spec["id"], started]))
        outcome = run_job(spec, compiled)
        outcome["started"] = started
        outcome["finished"] = time.time()
        try:
            done = orjson.dumps(["done", spec["id"], outcome])
        except TypeError as exc:
            done = orjson.dumps(["done", spec["id"], {**outcome, "ok": False, "result": None,
                                                      "error": f"result cannot be sent: {exc}"}])
        conn.send_bytes(done)
        sys.stdout.flush()


__all__ = ["JobContext", "main"]
