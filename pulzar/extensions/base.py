"""What an extension is made of: the `Extension` base class, `ExtensionError`, and the context
a worker process gives the extension it runs.

An extension is a module `<app_id>.py` in the extensions directory with a class named after the
file, capitalised (`mysuperextension.py` -> `Mysuperextension`). For each call the worker builds
it as `cls(arguments, params, file_path)` and answers with what `execute()` returns:

    GET /extension/mysuperextension/a/b?x=1&x=2
    -> Mysuperextension(["a", "b"], {"x": ["1", "2"]}, None).execute()

`file_path` is the PUT body spooled to a temporary file (None on a GET); the server removes it
after the call. Raise `ExtensionError` for a bad request (400, or the status you give it); any
other exception is a 500 that carries its message.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any


class ExtensionError(Exception):
    """Raised by an extension to refuse a call: the caller gets `status` (400 by default) and
    `message` in the JSON envelope. Statuses outside 400-599 become 400."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status if 400 <= status <= 599 else 400


@dataclass(frozen=True, slots=True)
class ExtensionContext:
    """What the master tells the worker about the cluster, for the call being run."""

    #: The master's URL, as clients reach it (`<master_url>/get_key/...`).
    master_url: str
    #: The master's LMDB key index, which `search` opens read-only.
    index_path: str
    map_size_gb: int
    #: URLs of this cluster's master and volumes (their hosts may always be fetched from).
    cluster_urls: tuple[str, ...]
    #: Further hosts that may be fetched from (`[extensions] allowed_hosts`).
    allowed_hosts: tuple[str, ...]
    #: Bearer token for reading keys through the cluster ("" when the API is open).
    token: str
    #: Largest body or fetched value an extension handles, in bytes (`[general] maxsize`).
    max_bytes: int
    #: Seconds the call may run (`[extensions] timeout`).
    timeout: float


_current: ExtensionContext | None = None


def current_context() -> ExtensionContext:
    """The context of the call this worker process is running."""
    if _current is None:
        raise RuntimeError("no extension call is running in this process")
    return _current


def set_context(context: ExtensionContext | None) -> None:
    global _current
    _current = context


class Extension(ABC):
    """Base class of extensions, as the original's `pulzarutils.extension.Extension`.

    Subclasses may override `__init__(self, arguments, params, file_path=None)` without
    calling it (the original's template did not); they must define `execute()`.
    """

    file_path: str | None = None

    def __init__(
        self, arguments: list[str], params: dict[str, list[str]], file_path: str | None = None
    ) -> None:
        self.arguments = arguments
        self.params = params
        self.file_path = file_path

    @abstractmethod
    def execute(self) -> Any:
        """Do the work; return JSON-able data (dict, list, str, numbers, None)."""

    @property
    def context(self) -> ExtensionContext:
        """The cluster as the master described it for this call."""
        return current_context()

    def clean_tmp(self) -> None:
        """Remove the spooled body now (kept for the original's extensions; the server
        removes it after the call anyway)."""
        if self.file_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.file_path)


def first(params: dict[str, list[str]], name: str) -> str | None:
    """The first value of query parameter `name`, or None."""
    values = params.get(name)
    return values[0] if values else None


def flag(params: dict[str, list[str]], name: str) -> bool:
    """A yes/no query parameter: 1/true/yes/on is yes, 0/false/no/off or absent is no."""
    raw = first(params, name)
    if raw is None:
        return False
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ExtensionError(f"'{name}' must be 0 or 1, got {raw!r}")
