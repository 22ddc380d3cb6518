"""Signed, expiring tickets and internal request signatures (DESIGN.md sections 2 and 9).

A ticket is `base64url(json payload) + "." + base64url(hmac-sha256)` made with the cluster
secret. The master hands write tickets in its 307 answers; a volume checks the signature and the
expiry (with a margin for clock skew) before it takes a byte of the body.

Internal requests (heartbeats, commits, deletes) carry `X-Pulzar-Signature: <ts>.<hmac>` over
the method, the path with its query and the timestamp, so the secret itself never travels.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from pulzar.core.errors import Forbidden, Unauthorized

CLOCK_SKEW = 30.0
SIGNATURE_HEADER = "X-Pulzar-Signature"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64(data: bytes) -> str:
    """base64url without padding (`base64.urlsafe_b64encode`, stripped, in fewer steps)."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """`_b64` read back (as leniently as `base64.urlsafe_b64decode`); ValueError when bad."""
    raw = text.encode("ascii").translate(_FROM_URLSAFE)
    return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))


def _mac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class WriteTicket:
    """Permission to store one version of one key on the listed volumes."""

    key: str
    version: int
    #: Node ids of the candidates, best first: the primary, then the other replicas, then
    #: spares that take a copy when a replica cannot be reached.
    nodes: tuple[str, ...]
    #: Their URLs, in the same order (the primary forwards to the others).
    urls: tuple[str, ...]
    #: Epoch seconds after which the ticket is refused.
    expires_at: float
    #: Lifetime of the value in seconds (`?temporal=DAYS`), or None for no expiry.
    ttl: float | None = None
    #: Condition checked atomically at commit: "" none, "*" create-only, "etag:<hex>",
    #: "version:<n>" or "exists" (If-Match: *).
    condition: str = ""
    request_id: str = ""
    #: When the key was first created (kept over overwrites); None for a new key.
    created: float | None = None
    #: Copies to make (R) and copies that must be durable before the commit (W).
    copies: int = 1
    quorum: int = 1
    #: Set when restoring a backup: the value keeps its modification time and expiry.
    modified: float | None = None
    expires: float | None = None
    #: The token this ticket was read from (`verify_ticket`): a primary hands it on to the
    #: replicas as it came instead of signing the same payload again.
    token: str = field(default="", compare=False, repr=False)

    def signed(self, secret: str) -> str:
        return self.token or sign_ticket(secret, self)

    def to_payload(self) -> dict[str, Any]:
        return {
            "k": self.key,
            "v": self.version,
            "n": list(self.nodes),
            "u": list(self.urls),
            "x": self.expires_at,
            "t": self.ttl,
            "c": self.condition,
            "i": self.request_id,
            "cr": self.created,
            "r": self.copies,
            "w": self.quorum,
            "m": self.modified,
            "e": self.expires,
        }

    @classmethod
    def from_payload(cls, p: dict[str, Any], token: str = "") -> WriteTicket:
        """The ticket of a payload whose signature was checked: `to_payload` made it, so its
        fields have their types already."""
        return cls(
            p["k"],
            p["v"],
            tuple(p["n"]),
            tuple(p["u"]),
            p["x"],
            p.get("t"),
            p.get("c", ""),
            p.get("i", ""),
            p.get("cr"),
            p.get("r", 1),
            p.get("w", 1),
            p.get("m"),
            p.get("e"),
            token,
        )


def sign_ticket(secret: str, ticket: WriteTicket) -> str:
    body = orjson.dumps(ticket.to_payload())
    return _b64(body) + "." + _b64(_mac(secret, b"write:" + body))


def verify_ticket(secret: str, token: str | None, now: float) -> WriteTicket:
    """Check a write ticket; raise `Unauthorized` when missing, `Forbidden` when bad or expired."""
    if not token:
        raise Unauthorized("this write needs a ticket: send the PUT to the master, which redirects")
    try:
        body_text, sig_text = token.split(".", 1)
        body, sig = _unb64(body_text), _unb64(sig_text)
    except (ValueError, binascii.Error):
        raise Forbidden("write ticket is malformed") from None
    if not hmac.compare_digest(sig, _mac(secret, b"write:" + body)):
        raise Forbidden("write ticket signature does not match")
    try:
        ticket = WriteTicket.from_payload(orjson.loads(body), token)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise Forbidden("write ticket is malformed") from None
    if now > ticket.expires_at + CLOCK_SKEW:
        raise Forbidden("write ticket has expired: ask the master for a new one")
    return ticket


def sign_request(secret: str, method: str, path_qs: str, now: float) -> str:
    stamp = f"{now:.3f}"
    message = f"{stamp}\n{method.upper()}\n{path_qs}".encode()
    return stamp + "." + _b64(_mac(secret, message))


def verify_request(secret: str, header: str | None, method: str, path_qs: str, now: float) -> None:
    """Check an internal request's signature; raise `Forbidden` unless it is fresh and right."""
    if not header:
        raise Unauthorized("internal endpoint: cluster signature required")
    stamp, _, sig_text = header.rpartition(".")
    try:
        when = float(stamp)
        sig = _unb64(sig_text)
    except (ValueError, binascii.Error):
        raise Forbidden("cluster signature is malformed") from None
    message = f"{stamp}\n{method.upper()}\n{path_qs}".encode()
    if not hmac.compare_digest(sig, _mac(secret, message)):
        raise Forbidden("cluster signature does not match: is the cluster secret the same?")
    if abs(now - when) > CLOCK_SKEW * 2:
        raise Forbidden("cluster signature is too old or from the future (check the clocks)")


def sign_read_ticket(secret: str, key: str, expires_at: float) -> str:
    """A short-lived permission to read `key` (carried in a GET's 307 when a token is
    required, since clients drop the Authorization header on a redirect to another port)."""
    stamp = f"{expires_at:.0f}"
    return stamp + "." + _b64(_mac(secret, f"read:{stamp}:{key}".encode()))


def check_read_ticket(secret: str, ticket: str | None, key: str, now: float) -> bool:
    if not ticket:
        return False
    stamp, _, sig_text = ticket.partition(".")
    try:
        expires_at = float(stamp)
        sig = _unb64(sig_text)
    except (ValueError, binascii.Error):
        return False
    good = hmac.compare_digest(sig, _mac(secret, f"read:{stamp}:{key}".encode()))
    return good and now <= expires_at + CLOCK_SKEW
