"""Reading a value for an extension: a key through the cluster, or a URL on an allowed host.

The master never fetches arbitrary URLs on a caller's behalf (DESIGN.md section 9): a URL's
host must be one of this cluster's nodes or listed in `[extensions] allowed_hosts`, and so must
every redirect's; what is read is capped at `[general] maxsize`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import httpx

from pulzar.client import Client
from pulzar.core.errors import InvalidKey, KeyNotFound, PulzarError
from pulzar.core.keys import validate_key
from pulzar.extensions.base import ExtensionContext, ExtensionError

_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_HOPS = 5


def _node(url: str) -> tuple[str, int | None]:
    """(host, port) of a node URL, with the scheme's default port."""
    try:
        parts = urlsplit(url)
        return (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return "", None


def _entry(entry: str) -> tuple[str, int | None]:
    """(host, port) of an allow-list entry: `host` (port None: any) or `host:port`."""
    try:
        parts = urlsplit(entry if "//" in entry else "//" + entry)
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", None


def host_allowed(url: str, cluster_urls: Iterable[str], allowed_hosts: Iterable[str]) -> bool:
    """Whether `url` (http or https) points at a cluster node (same host and port) or at a
    host of `allowed_hosts` (`host` allows any port, `host:port` that port only)."""
    host, port = _node(url)
    if urlsplit(url).scheme not in _DEFAULT_PORTS or not host or port is None:
        return False
    if any(_node(node) == (host, port) for node in cluster_urls):
        return True
    for entry in allowed_hosts:
        allowed_host, allowed_port = _entry(entry.strip())
        if allowed_host and allowed_host == host and allowed_port in (None, port):
            return True
    return False


def _capped(chunks: Iterator[bytes], limit: int, what: str) -> bytes:
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise ExtensionError(f"{what} is over the limit of {limit} bytes", status=413)
    return bytes(data)


def read_key(ctx: ExtensionContext, key: str) -> bytes:
    """The value of `key`, read through the master like any client would."""
    try:
        key = validate_key(key)
    except InvalidKey as exc:
        raise ExtensionError(f"{exc.message}: {key!r}") from None
    try:
        with (
            Client(ctx.master_url, token=ctx.token or None, timeout=ctx.timeout) as client,
            client.get_stream(key) as chunks,
        ):
            return _capped(chunks, ctx.max_bytes, f"key {key}")
    except KeyNotFound:
        raise ExtensionError(f"key not found: {key}", status=404) from None
    except PulzarError as exc:
        status = exc.status if exc.status >= 400 else 502
        raise ExtensionError(f"cannot read key {key}: {exc.message}", status=status) from None


def read_url(ctx: ExtensionContext, url: str) -> bytes:
    """The body of `url` when its host is allowed (403 otherwise). Redirects are followed only
    to allowed hosts too (a master's `/get_key` 307 to a volume, say), at most `MAX_HOPS`."""
    with httpx.Client(timeout=ctx.timeout, follow_redirects=False) as http:
        for _ in range(MAX_HOPS + 1):
            if not host_allowed(url, ctx.cluster_urls, ctx.allowed_hosts):
                raise ExtensionError(
                    f"image_url host is not allowed: {urlsplit(url).netloc or url!r} (allowed: "
                    "this cluster's nodes and [extensions] allowed_hosts)",
                    status=403,
                )
            try:
                with http.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise ExtensionError(
                            f"image_url answered HTTP {response.status_code}", status=502
                        )
                    return _capped(response.iter_bytes(), ctx.max_bytes, "image_url's body")
            except httpx.HTTPError as exc:
                raise ExtensionError(f"cannot fetch image_url: {exc}", status=502) from None
    raise ExtensionError(f"image_url redirected more than {MAX_HOPS} times", status=502)
