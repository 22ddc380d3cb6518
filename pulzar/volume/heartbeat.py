"""The volume's side of the heartbeat: one WebSocket to the master, a beat per interval.

The master sees the volume die the moment the connection drops; a volume that cannot reach the
master keeps serving reads and retries every `[timers] reconnect` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import orjson

from pulzar.core.errors import Unavailable
from pulzar.http.internal import signed_headers
from pulzar.volume.service import VolumeService

log = logging.getLogger(__name__)

PATH = "/internal/heartbeat"


async def run_heartbeat(svc: VolumeService) -> None:
    timers = svc.config.timers
    refused_logged = False
    while True:
        try:
            headers = signed_headers(svc.secret, "GET", PATH)
            async with svc.client().ws_connect(svc.master + PATH, headers=headers) as ws:
                refused_logged = False
                await _beat(svc, ws, timers.heartbeat)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                if not refused_logged:
                    log.error(
                        "the master at %s refused this volume: the cluster secret differs "
                        "(set PULZAR_CLUSTER_SECRET to the master's)",
                        svc.master,
                    )
                    refused_logged = True
            else:
                log.warning("heartbeat refused by %s: %s", svc.master, exc.status)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("master %s not reachable (%s); retrying", svc.master, exc)
        except Exception:
            log.exception("heartbeat failed; retrying")
        svc.registered = False
        await asyncio.sleep(timers.reconnect)


async def _beat(svc: VolumeService, ws: aiohttp.ClientWebSocketResponse, interval: float) -> None:
    first = True
    while True:
        await ws.send_bytes(orjson.dumps(svc.stats()))
        msg = await ws.receive(timeout=max(5.0, interval * 5))
        if msg.type is not aiohttp.WSMsgType.BINARY:
            return
        was_allowed = svc.reconcile_allowed and not first
        allowed = svc.join_cluster(str(orjson.loads(msg.data).get("cluster", "")))
        if first:
            first = False
            svc.registered = True
            log.info("registered with the master at %s as %s", svc.master, svc.node_id)
        if allowed and not was_allowed:
            svc.spawn(_reconcile(svc))
        await asyncio.sleep(interval)


async def _reconcile(svc: VolumeService) -> None:
    """Drop what was deleted or superseded while away; settle values left pending."""
    try:
        dropped = await svc.reconcile(time.time())
        if dropped:
            log.info("reconciled with the master: dropped %d stale values", dropped)
    except Unavailable as exc:
        log.info("reconciling later: %s", exc)
