"""TLS for listeners and for internal calls (optional: `[security] tls_cert`, `tls_key`,
`tls_ca`)."""

from __future__ import annotations

import ssl

import aiohttp

from pulzar.core.config import SecurityConfig
from pulzar.core.errors import ConfigError


def server_context(security: SecurityConfig) -> ssl.SSLContext | None:
    if not security.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(security.tls_cert, security.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"config error: cannot load [security] tls_cert/tls_key: {exc}") from None
    return context


def client_context(security: SecurityConfig) -> ssl.SSLContext:
    """Verifies peers against `tls_ca` when given, else the system's CAs."""
    context = ssl.create_default_context(cafile=security.tls_ca or None)
    return context


def session(security: SecurityConfig, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """An aiohttp session for node-to-node calls: keep-alive connections, peers verified."""
    connector = aiohttp.TCPConnector(ssl=client_context(security), limit=256)
    return aiohttp.ClientSession(timeout=timeout, connector=connector)
