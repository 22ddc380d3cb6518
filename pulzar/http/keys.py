"""Reading keys and their options out of requests (the edge's half of the key rules)."""

from __future__ import annotations

from aiohttp import web

from pulzar.core.errors import BadRequest
from pulzar.core.keys import parse_key, parse_prefix


def _tail(request: web.Request, route: str) -> str:
    path = request.raw_path.split("?", 1)[0]
    return path[len(route) :] if path.startswith(route) else ""


def key_from(request: web.Request, route: str) -> str:
    """The key in `route<key>`, percent-decoded once and validated (400 otherwise)."""
    return parse_key(_tail(request, route))


def prefix_from(request: web.Request, route: str) -> str:
    return parse_prefix(_tail(request, route))


def ttl_days_from(request: web.Request) -> float | None:
    """`?temporal=DAYS` (the original's name) or `?ttl=DAYS`: a positive number of days."""
    raw = request.query.get("temporal") or request.query.get("ttl")
    if raw is None or raw == "":
        return None
    try:
        days = float(raw)
    except ValueError:
        raise BadRequest(f"'temporal' must be a number of days, got {raw!r}") from None
    if not 0 < days <= 36500:
        raise BadRequest(f"'temporal' must be between 0 and 36500 days, got {raw}")
    return days


def condition_from(request: web.Request) -> str:
    """The write condition: create-only (`If-None-Match: *`) or compare-and-swap (`If-Match`)."""
    none_match = request.headers.get("If-None-Match") or request.query.get("if_none_match")
    match = request.headers.get("If-Match") or request.query.get("if_match")
    if none_match is not None:
        if none_match.strip() != "*":
            raise BadRequest("If-None-Match on a write supports only '*' (create-only)")
        if match is not None:
            raise BadRequest("give If-None-Match or If-Match, not both")
        return "*"
    if match is None:
        return ""
    value = match.strip()
    if value == "*":
        return "exists"
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if value.isascii() and value.isdigit():
        return f"version:{int(value)}"
    if len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower()):
        return f"etag:{value.lower()}"
    raise BadRequest("If-Match must be an ETag (as served) or a version number")
