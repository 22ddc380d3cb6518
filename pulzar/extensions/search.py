"""The search extension: keys containing a term, filtered by creation date.

    /extension/search/{term}                   keys whose name contains `term`
    /extension/search/{term}?eq=mm-dd-yyyy     ... created that day
    /extension/search/{term}?gt=mm-dd-yyyy&lt=mm-dd-yyyy    ... created between (inclusive)
    /extension/search?prefix=/logs/&limit=50   only keys under a prefix (no full scan)

Answers `[{"key": ..., "url": "<master>/get_key/<key>"}]` in key order. Dates are UTC days
of the key's creation (kept over overwrites); `eq` wins over `lt`/`gt`, as in the original.
`limit` is 1000 by default, at most 10000. Expired keys are not listed.

It reads the master's index read-only from the worker process (`indexview`): only key names
and metadata, never a value. A term is matched against every key name under `prefix`; the
date test decodes only the records whose name matched.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from pulzar.extensions.base import Extension, ExtensionError, first
from pulzar.extensions.indexview import open_index
from pulzar.storage.records import ValueMeta

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000
_DATE = re.compile(r"\d{1,2}-\d{1,2}-\d{4}")


def parse_date(name: str, raw: str | None) -> date | None:
    """`mm-dd-yyyy` (the original's format) as a date; `ExtensionError` when malformed."""
    if raw is None or raw == "":
        return None
    if not _DATE.fullmatch(raw):
        raise ExtensionError(f"'{name}' must be a date as mm-dd-yyyy, got {raw!r}")
    try:
        return datetime.strptime(raw, "%m-%d-%Y").date()
    except ValueError:
        raise ExtensionError(f"'{name}' is not a valid date: {raw!r}") from None


@dataclass(frozen=True, slots=True)
class Query:
    term: str = ""
    prefix: str = ""
    eq: date | None = None
    lt: date | None = None
    gt: date | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_request(cls, arguments: list[str], params: dict[str, list[str]]) -> Query:
        # `/extension/search/configs/app` searches for "configs/app".
        term = "/".join(arguments)
        raw_limit = first(params, "limit")
        limit = DEFAULT_LIMIT
        if raw_limit:
            try:
                limit = int(raw_limit)
            except ValueError:
                raise ExtensionError(f"'limit' must be an integer, got {raw_limit!r}") from None
            if not 1 <= limit <= MAX_LIMIT:
                raise ExtensionError(f"'limit' must be between 1 and {MAX_LIMIT}, got {limit}")
        prefix = first(params, "prefix") or ""
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        eq = parse_date("eq", first(params, "eq"))
        lt = parse_date("lt", first(params, "lt"))
        gt = parse_date("gt", first(params, "gt"))
        if eq is not None:
            lt = gt = None
        return cls(term, prefix, eq, lt, gt, limit)

    def wants(self, meta: ValueMeta, now: float) -> bool:
        if meta.is_expired(now):
            return False
        if self.eq is None and self.lt is None and self.gt is None:
            return True
        day = datetime.fromtimestamp(meta.created, UTC).date()
        if self.eq is not None:
            return day == self.eq
        if self.lt is not None and day > self.lt:
            return False
        return not (self.gt is not None and day < self.gt)


class Search(Extension):
    def execute(self) -> list[dict[str, Any]]:
        query = Query.from_request(self.arguments, self.params)
        ctx = self.context
        try:
            index = open_index(ctx.index_path, ctx.map_size_gb)
        except FileNotFoundError as exc:
            raise ExtensionError(str(exc), status=503) from None
        now = time.time()
        found: list[dict[str, Any]] = []
        with contextlib.closing(index.scan(query.prefix, query.term)) as metas:
            for meta in metas:
                if query.wants(meta, now):
                    found.append(
                        {"key": meta.key, "url": f"{ctx.master_url}/get_key{quote(meta.key)}"}
                    )
                    if len(found) >= query.limit:
                        break
        return found
