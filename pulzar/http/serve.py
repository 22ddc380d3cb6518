"""Running an aiohttp application as a server process (uvloop, signals, access log)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from pulzar.core.config import Config
from pulzar.http.fastpath import FAST, FastSite
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

    TLS when `[security] tls_cert` is set; request limits from `[server]`. An application with
    a fast path (`FAST`) answers its hottest requests from the socket (plain HTTP only)."""
    loop = new_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_run(app, host, port, config, access_log))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        rest = asyncio.all_tasks(loop)
        for task in rest:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.close()


async def _run(
    app: web.Application, host: str, port: int, config: Config, access_log: bool
) -> None:
    ssl_context = server_context(config.security)
    logger = logging.getLogger("pulzar.access") if access_log else None
    runner = web.AppRunner(
        app,
        handle_signals=True,
        access_log=logger,
        access_log_format=ACCESS_LOG_FORMAT,
        shutdown_timeout=5.0,
        keepalive_timeout=config.server.keepalive_timeout,
        max_line_size=config.server.max_header_size,
        max_field_size=config.server.max_header_size,
    )
    await runner.setup()
    try:
        # The fast path writes plain HTTP only; with TLS every request goes to aiohttp.
        fast = app.get(FAST) if ssl_context is None else None
        site = FastSite(
            runner,
            host,
            port,
            fast,
            keepalive=config.server.keepalive_timeout,
            access_log=logger,
            ssl_context=ssl_context,
        )
        await site.start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


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
