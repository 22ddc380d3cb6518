"""Key rules (DESIGN.md section 5).

A key is the part of the path after the route, percent-decoded once (so `%2F` is a `/`),
always starting with `/`. Any UTF-8 is allowed except control characters; no empty, `.` or
`..` segments; at most 1024 bytes.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from pulzar.core.errors import InvalidKey

MAX_KEY_BYTES = 1024

# C0, DEL and C1 control characters.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def parse_key(raw: str) -> str:
    """Turn the raw (still percent-encoded) path tail after a route into a valid key.

    Raises `InvalidKey` with a message that says which rule was broken.
    """
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidKey("key is not valid UTF-8") from None
    return validate_key(text)


def validate_key(text: str) -> str:
    """Validate an already decoded key and normalise it to start with `/`."""
    body = text[1:] if text.startswith("/") else text
    if not body:
        raise InvalidKey("key is empty")
    key = "/" + body
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"key is longer than {MAX_KEY_BYTES} bytes")
    if _CONTROL.search(key):
        raise InvalidKey("key contains a control character")
    for segment in body.split("/"):
        if segment == "":
            raise InvalidKey("key has an empty segment ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise InvalidKey(f"key has a '{segment}' segment")
    return key


def parse_prefix(raw: str) -> str:
    """A listing prefix: a plain string, normalised to start with `/` (empty lists all)."""
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidKey("prefix is not valid UTF-8") from None
    if _CONTROL.search(text):
        raise InvalidKey("prefix contains a control character")
    prefix = text if text.startswith("/") else "/" + text
    if len(prefix.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"prefix is longer than {MAX_KEY_BYTES} bytes")
    return prefix
