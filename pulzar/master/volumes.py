"""The master's calls to volumes (deletes), signed with the cluster secret."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import aiohttp

from pulzar.http.internal import signed_headers

log = logging.getLogger(__name__)


class VolumeCalls:
    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[bool]] = set()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    async def delete_value(self, url: str, key: str, upto_version: int) -> bool:
        path = f"/internal/values{quote(key)}?upto={upto_version}"
        try:
            async with self._client().delete(
                url + path, headers=signed_headers(self._secret, "DELETE", path)
            ) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("delete of %s v%d on %s not done now (%s)", key, upto_version, url, exc)
            return False

    def delete_later(self, targets: list[tuple[str, str, int]]) -> None:
        """Delete (url, key, version) copies in the background. A node that misses it drops
        the value when it next settles with the master."""
        for url, key, version in targets:
            task = asyncio.ensure_future(self.delete_value(url, key, version))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
