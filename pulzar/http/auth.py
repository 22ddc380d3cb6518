"""Who may call what: bearer tokens for the public API, read tickets through redirects.

- No `[security] token`: the public API is open (an internal network, as the original).
- With a token: every public request needs `Authorization: Bearer <token>` (401 without, 403
  when wrong), except GET and HEAD when `[security] reads_open` is set. A GET through the
  master's 307 carries a signed read ticket (`rt=`) that the volume (and the master, on a
  failover back to it) accepts instead, because `curl -L` drops the header on a redirect to
  another port.
- Routes that run code or reshape the cluster (launching and cancelling jobs, deploying job
  code, restore, drain, retiring a node) need `[security] admin_token`; with a token but no
  admin token they are refused, so the read/write token never runs code on the cluster.
- `/internal/...` is checked by its handlers (cluster signature); `/health`, `/openapi.json`
  and the dashboard's static files (`/ui`) are open: the dashboard asks for the token.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pulzar.core.errors import Forbidden, InvalidKey, Unauthorized
from pulzar.core.tickets import check_read_ticket
from pulzar.http.keys import key_from
from pulzar.http.responses import Handler, error_middleware

OPEN_PREFIXES = ("/internal/", "/health", "/openapi.json", "/ui")
ADMIN_ROUTES = (
    ("POST", "/launch_job/"),
    ("POST", "/cancel_job/"),
    ("POST", "/admin/jobs/deploy"),
    ("POST", "/admin/restore"),
    ("GET", "/admin/restore_node/"),
    ("POST", "/admin/drain/"),
    ("DELETE", "/admin/network/"),
    ("POST", "/admin/backup/jobs"),
)
READS = ("GET", "HEAD")


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    token: str
    admin_token: str
    reads_open: bool
    secret: str
    #: Path prefixes whose handlers check a ticket instead (a volume's /add_key/).
    ticketed: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.admin_token)

    @property
    def reads_need_no_token(self) -> bool:
        """GET and HEAD of keys are open to anyone (no token, or `reads_open`)."""
        return not self.token or self.reads_open

    def check(self, request: web.Request) -> None:
        """Raise `Unauthorized` / `Forbidden` unless the request may go on."""
        path, method = request.path, request.method
        if method == "OPTIONS" or path.startswith(OPEN_PREFIXES):
            return
        if self.ticketed and path.startswith(self.ticketed):
            return
        given = _bearer(request)
        if any(method == m and path.startswith(p) for m, p in ADMIN_ROUTES):
            if not self.admin_token:
                if self.token:
                    raise Forbidden(
                        "this runs code on the cluster: set [security] admin_token and use it"
                    )
                return
            if given is None:
                raise Unauthorized("an admin token is required: Authorization: Bearer <token>")
            if not _same(given, self.admin_token):
                raise Forbidden("this needs the admin token")
            return
        # GET /get_node hands out a write ticket: a write, whatever its method.
        if not self.token or (
            self.reads_open and method in READS and not path.startswith("/get_node/")
        ):
            return
        if given is not None:
            if _same(given, self.token) or _same(given, self.admin_token):
                return
            raise Forbidden("token refused")
        if method in READS and path.startswith("/get_key/") and "rt" in request.query:
            try:
                key = key_from(request, "/get_key")
            except InvalidKey:
                key = ""
            if key and check_read_ticket(self.secret, request.query["rt"], key, time.time()):
                return
        raise Unauthorized("a token is required: Authorization: Bearer <token> (or PULZAR_TOKEN)")

    def middleware(self) -> web.middleware:  # type: ignore[valid-type]
        @web.middleware
        async def check_access(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.check(request)
            return await handler(request)

        return check_access


def middlewares(policy: AccessPolicy) -> list[Any]:
    """The error envelope first (so refusals get it too), then the access check when any
    token is configured (none at all costs nothing per request)."""
    chain: list[Any] = [error_middleware]
    if policy.enabled:
        chain.append(policy.middleware())
    return chain
