"""Signing and checking node-to-node and node-to-master requests with the cluster secret.

Both sides sign the path and query fully percent-decoded: the HTTP client may re-encode a URL
(`%26` sent as `&`), and the signature must not depend on how.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

from aiohttp import web

from pulzar.core.tickets import SIGNATURE_HEADER, sign_request, verify_request


def signed_headers(secret: str, method: str, path_qs: str) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign_request(secret, method, unquote(path_qs), time.time())}


def check_signed(request: web.Request, secret: str) -> None:
    """Raise 401/403 unless the request carries a fresh signature made with `secret`."""
    verify_request(
        secret,
        request.headers.get(SIGNATURE_HEADER),
        request.method,
        unquote(request.raw_path),
        time.time(),
    )
