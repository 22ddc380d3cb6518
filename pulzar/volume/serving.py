"""Serving a stored value: Content-Length, ETag (checksum), Content-Type, Last-Modified, Range.

Inline values are answered from memory; file values with sendfile (zero copy), like a static
file server would.
"""

from __future__ import annotations

import asyncio
import functools
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from pulzar.storage.records import ValueMeta
from pulzar.storage.values import StoredValue


def _byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(start, count) of a satisfiable single Range; None for the whole value.

    Raises 416 for an unsatisfiable or malformed range.
    """
    if "Range" not in request.headers:
        return None
    try:
        rng = request.http_range
    except ValueError:
        raise _unsatisfiable(size) from None
    start, stop = rng.start, rng.stop
    if start is None:
        return None
    if start < 0:
        start = max(0, size + start)
        stop = size
    stop = size if stop is None else min(stop, size)
    if start >= size or stop <= start:
        raise _unsatisfiable(size)
    return start, stop - start


def _unsatisfiable(size: int) -> web.HTTPRequestRangeNotSatisfiable:
    return web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


@functools.lru_cache(maxsize=8192)
def _http_date(ts: float) -> str:
    """`Last-Modified` text (formatting it costs more than the rest of a small answer)."""
    return formatdate(ts, usegmt=True)


def value_headers(meta: ValueMeta) -> dict[str, str]:
    """The headers of every answer with a value (or a 304 for it)."""
    return {
        "ETag": f'"{meta.etag}"',
        "Last-Modified": _http_date(meta.modified),
        "Accept-Ranges": "bytes",
        "Content-Type": meta.content_type,
        "X-Pulzar-Version": str(meta.version),
    }


async def value_response(request: web.Request, stored: StoredValue) -> web.StreamResponse:
    meta = stored.meta
    headers = value_headers(meta)
    etag = headers["ETag"]
    inm = request.headers.get("If-None-Match")
    if inm is not None and (inm.strip() == "*" or etag in inm):
        return web.Response(status=304, headers=headers)
    span = _byte_range(request, meta.size)
    status = 200
    start, count = 0, meta.size
    if span is not None:
        start, count = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{start + count - 1}/{meta.size}"
    if stored.data is not None:
        return web.Response(status=status, body=stored.data[start : start + count], headers=headers)
    assert stored.path is not None
    return await _send_file(request, stored.path, status, headers, start, count)


def _open(path: Path) -> BinaryIO:
    return open(path, "rb")


async def _send_file(
    request: web.Request,
    path: Path,
    status: int,
    headers: dict[str, str],
    start: int,
    count: int,
) -> web.StreamResponse:
    try:
        fobj = await asyncio.to_thread(_open, path)
    except FileNotFoundError:
        raise web.HTTPNotFound() from None
    try:
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = count
        await response.prepare(request)
        if request.method == "HEAD" or count == 0:
            await response.write_eof()
            return response
        transport = request.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        try:
            await loop.sendfile(transport, fobj, start, count)
        except NotImplementedError:
            await asyncio.to_thread(fobj.seek, start)
            left = count
            while left:
                chunk = await asyncio.to_thread(fobj.read, min(left, 1024 * 1024))
                if not chunk:
                    break
                await response.write(chunk)
                left -= len(chunk)
        await response.write_eof()
        return response
    finally:
        fobj.close()  # at once: a cancelled request must not leave it open
