"""The extensions as the master's HTTP layer sees them: find one, spool a body, run a call.

It knows nothing of HTTP requests (`pulzar.master.extension_routes` parses and answers) and
nothing of the master's internals: the cluster's URLs come from a callable.

Spooled bodies live in `<master data>/extension-spool/` for the length of one call and are
removed after it, whatever happened. A crash of the master in between leaves files there; they
are removed when the master starts again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from pathlib import Path

from pulzar.core.config import Config, data_path
from pulzar.core.errors import PayloadTooLarge
from pulzar.extensions.base import ExtensionContext
from pulzar.extensions.loader import find_extension
from pulzar.extensions.runner import WorkerPool
from pulzar.extensions.worker import Reply, Task

log = logging.getLogger(__name__)

MIB = 1024 * 1024
SPOOL_DIR = "extension-spool"
_SPOOL_PREFIX = "body-"


class ExtensionService:
    def __init__(self, config: Config, cluster_urls: Callable[[], Iterable[str]]) -> None:
        self.directory = data_path(config.extensions.dir)
        self.timeout = config.extensions.timeout
        self.max_bytes = config.general.maxsize * MIB
        self.pool = WorkerPool(config.extensions.workers)
        self.spool_dir = data_path(config.server.data) / SPOOL_DIR
        self._cluster_urls = cluster_urls
        self._master_url = config.master_url
        self._index_path = str(data_path(config.server.data) / "index")
        self._map_size_gb = config.storage.map_size_gb
        self._allowed_hosts = tuple(
            h.strip() for h in config.extensions.allowed_hosts.split(",") if h.strip()
        )
        self._token = config.security.token
        self._clear_spool()

    def _clear_spool(self) -> None:
        """Remove bodies left behind by a master that died during a call."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.spool_dir.glob(_SPOOL_PREFIX + "*"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def find(self, app_id: str) -> Path:
        """The file of extension `app_id`; `NotFound` (404) for anything else. Imports nothing."""
        return find_extension(app_id, self.directory)

    def context(self) -> ExtensionContext:
        urls = tuple(dict.fromkeys([self._master_url, *self._cluster_urls()]))
        return ExtensionContext(
            master_url=self._master_url,
            index_path=self._index_path,
            map_size_gb=self._map_size_gb,
            cluster_urls=urls,
            allowed_hosts=self._allowed_hosts,
            token=self._token,
            max_bytes=self.max_bytes,
            timeout=self.timeout,
        )

    def check_size(self, declared: int | None) -> None:
        if declared is not None and declared > self.max_bytes:
            raise PayloadTooLarge(
                f"body of {declared} bytes is over the limit of {self.max_bytes // MIB} MiB"
            )

    @contextlib.asynccontextmanager
    async def spooled(
        self, chunks: AsyncIterable[bytes], declared: int | None
    ) -> AsyncIterator[str]:
        """Write the body to a temporary file, yield its path, and always remove it.

        Raises `PayloadTooLarge` (413) when the body is, or turns out to be, over maxsize.
        """
        self.check_size(declared)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        fd = -1
        path = ""
        try:
            fd, path = tempfile.mkstemp(prefix=_SPOOL_PREFIX, dir=self.spool_dir)
            size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_bytes:
                    self.check_size(size)
                # Page-cache writes of one chunk: microseconds, not worth a thread hop.
                os.write(fd, chunk)
            os.close(fd)
            fd = -1
            yield path
        finally:
            if fd >= 0:
                os.close(fd)
            if path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    async def run(
        self,
        app_id: str,
        path: Path,
        arguments: list[str],
        params: dict[str, list[str]],
        file_path: str | None,
    ) -> Reply:
        """Run one call in the worker pool; errors come back as a `Reply` with their status,
        except the pool's own (`GatewayTimeout`, `Unavailable`, `WorkerDied`), which raise."""
        task = Task(app_id, str(path), arguments, params, file_path, self.context())
        reply = await self.pool.run(task, self.timeout)
        if reply.status >= 500:
            log.error("extension %s: %s\n%s", app_id, reply.message, reply.trace.rstrip())
        return reply

    async def close(self) -> None:
        await self.pool.close()
