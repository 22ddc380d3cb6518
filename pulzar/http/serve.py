"""Running an aiohttp application as a server process (uvloop, signals, access log)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from pulzar.core.config import Config
from pulzar.http.tls import server_context

ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs rid=%{X-Request-Id}o'


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(app: web.Application, host: str, port: int, config: Config, *, access_log: bool) -> None:
    """Serve until SIGINT or SIGTERM; in-flight requests get a few seconds to finish.

    TLS when `[security] tls_cert` is set; request limits from `[server]`."""
    ssl_context = server_context(config.security)
    loop = new_loop()
    asyncio.set_event_loop(loop)
    web.run_app(
        app,
        host=host,
        port=port,
        loop=loop,
        print=None,
        access_log=logging.getLogger("pulzar.access") if access_log else None,
        access_log_format=ACCESS_LOG_FORMAT,
        shutdown_timeout=5.0,
        handle_signals=True,
        ssl_context=ssl_context,
        keepalive_timeout=config.server.keepalive_timeout,
        max_line_size=config.server.max_header_size,
        max_field_size=config.server.max_header_size,
    )


async def every(seconds: float, step: Callable[[float], Awaitable[object]], name: str) -> None:
    """Run `step(now)` every `seconds` until cancelled; a failing step is logged, not fatal.
    The one place a periodic loop sleeps: the steps themselves take the time as a parameter."""
    log = logging.getLogger("pulzar.loops")
    while True:
        await asyncio.sleep(seconds)
        try:
            await step(time.time())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", name)
