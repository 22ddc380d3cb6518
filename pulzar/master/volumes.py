"""The master's calls to volumes (deletes, copies), signed with the cluster secret."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from pulzar.core.config import SecurityConfig
from pulzar.core.tickets import WriteTicket, sign_ticket
from pulzar.http import tls
from pulzar.http.internal import signed_headers
from pulzar.storage.records import KeyRecord

log = logging.getLogger(__name__)

#: How long a pushed copy may take before the master gives up on it.
COPY_TIMEOUT = 600.0


class VolumeCalls:
    def __init__(self, secret: str, security: SecurityConfig, timeout: float = 30.0) -> None:
        self._secret = secret
        self._security = security
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = tls.session(self._security, aiohttp.ClientTimeout(total=self._timeout))
        return self._session

    async def close(self, grace: float = 5.0) -> None:
        """Give deletes and other calls in flight `grace` seconds to reach their volumes (a
        volume that misses one settles it when it next reconciles), then stop."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, url: str, path: str, timeout: float | None = None) -> bool:
        """A signed call; True on a 2xx answer, False when refused or unreachable."""
        try:
            async with self._client().request(
                method,
                url + path,
                headers=signed_headers(self._secret, method, path),
                timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
            ) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("%s %s on %s not done now (%s)", method, path, url, exc)
            return False

    async def post_json(self, url: str, path: str, body: Any) -> Any:
        """A signed JSON call whose answer's `data` is returned; raises on any failure."""
        headers = signed_headers(self._secret, "POST", path)
        headers["Content-Type"] = "application/json"
        async with self._client().post(
            url + path, data=orjson.dumps(body), headers=headers
        ) as resp:
            payload = orjson.loads(await resp.read())
            if resp.status != 200:
                raise RuntimeError(f"{url}{path}: {resp.status} {payload.get('msg')}")
            return payload["data"]

    async def delete_value(self, url: str, key: str, upto_version: int) -> bool:
        """Delete every version up to `upto_version` (the volume keeps a tombstone)."""
        return await self.call("DELETE", url, f"/internal/values{quote(key)}?upto={upto_version}")

    async def drop_version(self, url: str, record: KeyRecord) -> bool:
        """Drop one copy of one version (a move or a refused copy), without a tombstone."""
        path = f"/internal/values{quote(record.meta.key)}?v={record.meta.version}"
        return await self.call("DELETE", url, path)

    async def finalize(self, url: str, record: KeyRecord) -> bool:
        path = f"/internal/finalize{quote(record.meta.key)}?v={record.meta.version}"
        return await self.call("POST", url, path)

    async def push_copy(
        self,
        source_url: str,
        record: KeyRecord,
        target_id: str,
        target_url: str,
        ticket_ttl: float,
    ) -> bool:
        """Have the volume at `source_url` send its copy of `record` to the target volume."""
        ticket = WriteTicket(
            key=record.meta.key,
            version=record.meta.version,
            nodes=(target_id,),
            urls=(target_url,),
            expires_at=time.time() + ticket_ttl,
        )
        path = (
            f"/internal/copy{quote(record.meta.key)}?v={record.meta.version}"
            f"&t={sign_ticket(self._secret, ticket)}"
        )
        return await self.call("POST", source_url, path, timeout=COPY_TIMEOUT)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def delete_later(self, targets: list[tuple[str, str, int]]) -> None:
        """Delete (url, key, version) copies in the background. A node that misses it drops
        the value when it next reconciles with the master."""
        for url, key, version in targets:
            self.spawn(self.delete_value(url, key, version))
