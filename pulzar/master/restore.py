"""Rebuilding the master index from the volumes (`pulzar restore`, `pulzar master --restore`).

Each volume lists its values in key order with their own metadata (`/internal/dump`), plus the
deletes it was told of. The lists are merged key by key: the highest version held anywhere wins,
the nodes holding that version become its replicas, and a key whose newest delete is newer than
every copy stays deleted. Versions, creation times, modification times and TTLs come back as
they were. Memory stays bounded: one page per volume at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from pulzar.core.config import SecurityConfig
from pulzar.core.errors import BadRequest, Unavailable
from pulzar.http import tls
from pulzar.http.internal import signed_headers
from pulzar.storage.index import Index
from pulzar.storage.keycodec import stored_key
from pulzar.storage.records import KeyRecord, ValueMeta

log = logging.getLogger(__name__)

PAGE = 1000


@dataclass
class RestoreProgress:
    running: bool = False
    volumes: int = 0
    values_seen: int = 0
    keys_restored: int = 0
    keys_deleted: int = 0
    error: str | None = None
    finished: float | None = None
    sources: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "volumes": self.volumes,
            "values_seen": self.values_seen,
            "keys_restored": self.keys_restored,
            "keys_deleted": self.keys_deleted,
            "error": self.error,
            "finished": self.finished,
            "sources": self.sources,
        }


@dataclass
class _Volume:
    url: str
    node_id: str = ""
    cluster_id: str = ""
    tombs: dict[str, int] = field(default_factory=dict)


async def _pages(
    session: aiohttp.ClientSession, secret: str, volume: _Volume, progress: RestoreProgress
) -> AsyncIterator[dict[str, Any]]:
    after = ""
    while True:
        path = f"/internal/dump?limit={PAGE}" + (f"&after={after}" if after else "")
        try:
            async with session.get(
                volume.url + path, headers=signed_headers(secret, "GET", path)
            ) as resp:
                body = orjson.loads(await resp.read())
                if resp.status != 200:
                    raise Unavailable(f"{volume.url} refused the dump: {body.get('msg')}")
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise Unavailable(f"cannot read the values of {volume.url}: {exc}") from exc
        data = body["data"]
        volume.node_id, volume.cluster_id = data["node"], data["cluster"]
        if not after:
            volume.tombs = {k: int(v) for k, v in data.get("tombs", [])}
        for entry in data["values"]:
            progress.values_seen += 1
            yield entry
        after = data["next"] or ""
        if not after:
            return


async def rebuild(
    index: Index,
    secret: str,
    urls: list[str],
    progress: RestoreProgress,
    copies: int,
    security: SecurityConfig,
) -> None:
    """Merge every volume's values into `index` (which should be empty)."""
    if not urls:
        raise BadRequest("restore needs at least one volume URL")
    progress.running, progress.error, progress.volumes = True, None, len(urls)
    progress.sources = list(urls)
    volumes = [_Volume(url.rstrip("/")) for url in urls]
    now = time.time()
    try:
        async with tls.session(security, aiohttp.ClientTimeout(total=120)) as session:
            streams = [_pages(session, secret, v, progress).__aiter__() for v in volumes]
            heads: list[dict[str, Any] | None] = [await anext(s, None) for s in streams]
            tombs: dict[str, int] = {}
            for v in volumes:
                for key, version in v.tombs.items():
                    tombs[key] = max(version, tombs.get(key, 0))
            highest = max(tombs.values(), default=0)
            batch: list[KeyRecord] = []
            while any(h is not None for h in heads):
                # Volumes list in stored-key order (see storage.keycodec): merge in that order.
                position = min(stored_key(h["key"]) for h in heads if h is not None)
                best: ValueMeta | None = None
                holders: list[str] = []
                for i, head in enumerate(heads):
                    while head is not None and stored_key(head["key"]) == position:
                        meta = ValueMeta.from_json(head)
                        if best is None or meta.version > best.version:
                            best, holders = meta, [volumes[i].node_id]
                        elif meta.version == best.version and volumes[i].node_id not in holders:
                            holders.append(volumes[i].node_id)
                        head = await anext(streams[i], None)
                    heads[i] = head
                assert best is not None
                highest = max(highest, best.version)
                if tombs.get(best.key, 0) >= best.version or best.is_expired(now):
                    progress.keys_deleted += 1
                    continue
                batch.append(KeyRecord(best, tuple(holders), max(copies, len(holders))))
                if len(batch) >= PAGE:
                    await index.restore(batch, {}, highest)
                    progress.keys_restored += len(batch)
                    batch = []
            await index.restore(batch, tombs, highest)
            progress.keys_restored += len(batch)
            cluster_ids = {v.cluster_id for v in volumes if v.cluster_id}
            if len(cluster_ids) == 1:
                await index.adopt_cluster_id(cluster_ids.pop())
    except Exception as exc:
        progress.error = str(exc)
        raise
    finally:
        progress.running = False
        progress.finished = time.time()
