"""Signing and checking node-to-node and node-to-master requests with the cluster secret."""

from __future__ import annotations

import time

from aiohttp import web

from pulzar.core.tickets import SIGNATURE_HEADER, sign_request, verify_request


def signed_headers(secret: str, method: str, path_qs: str) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign_request(secret, method, path_qs, time.time())}


def check_signed(request: web.Request, secret: str) -> None:
    """Raise 401/403 unless the request carries a fresh signature made with `secret`."""
    verify_request(
        secret, request.headers.get(SIGNATURE_HEADER), request.method, request.path_qs, time.time()
    )
