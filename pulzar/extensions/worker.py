"""The worker process that runs extensions, one call at a time.

The master (`pulzar.extensions.runner`) starts it as a fresh interpreter, so it shares nothing
with the master's event loop, threads or open LMDB environment, and talks to it over a socket:
a `Task` in, a `Reply` out. It imports extensions on first use and keeps them until their file
changes. It runs in its own process group, so that killing it on a timeout also ends what it
started (tesseract, for one).
"""

from __future__ import annotations

import signal
import sys
import traceback
import types
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import orjson

from pulzar.extensions import base
from pulzar.extensions.base import ExtensionContext, ExtensionError, set_context
from pulzar.extensions.loader import load_class


@dataclass(frozen=True, slots=True)
class Task:
    app_id: str
    path: str
    arguments: list[str]
    params: dict[str, list[str]]
    file_path: str | None
    context: ExtensionContext


@dataclass(frozen=True, slots=True)
class Reply:
    """`status` 200 with `body` the JSON of what `execute()` returned, or an error status with
    `message` (and for a 500 the traceback, which the master logs)."""

    status: int
    body: bytes = b""
    message: str = ""
    trace: str = ""


def run(task: Task) -> Reply:
    """Run one call; never raises."""
    set_context(task.context)
    try:
        cls = load_class(Path(task.path), task.app_id)
        data = cls(task.arguments, task.params, task.file_path).execute()
    except ExtensionError as exc:
        return Reply(exc.status, message=exc.message)
    except BaseException as exc:  # SystemExit too: the worker must answer
        message = f"extension {task.app_id} failed: {type(exc).__name__}: {exc}"
        return Reply(500, message=message, trace=traceback.format_exc())
    finally:
        set_context(None)
    try:
        body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        return Reply(500, message=f"extension {task.app_id} returned data that is not JSON: {exc}")
    return Reply(200, body=body)


def _alias_original_module() -> None:
    """Let extensions written for the original (`from pulzarutils.extension import Extension`)
    run unchanged, inside this process only."""
    if "pulzarutils" in sys.modules:
        return
    package = types.ModuleType("pulzarutils")
    package.__path__ = []
    package.extension = base  # type: ignore[attr-defined]
    sys.modules["pulzarutils"] = package
    sys.modules["pulzarutils.extension"] = base


def boot(fd: int) -> None:
    """Entry point of the worker process: serve the master on socket `fd`."""
    # Ctrl-C reaches the whole terminal's process group; the master stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _alias_original_module()
    main(Connection(fd))


def main(conn: Connection) -> None:
    """Serve calls until the master closes the connection (or goes away)."""
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        reply = run(task)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return
