"""The search extension: keys containing a term, by creation date (UTC days), with a limit."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from extension_cluster import Master

from pulzar.extensions.base import ExtensionError
from pulzar.extensions.search import Query
from pulzar.storage.records import KeyRecord, ValueMeta


def ts(day: str, hour: int = 12) -> float:
    """Epoch seconds of `day` (yyyy-mm-dd) at `hour`:00 UTC."""
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").timestamp()


def mdy(when: datetime) -> str:
    return when.strftime("%m-%d-%Y")


async def commit(master: Master, key: str, created: float, expires: float | None = None) -> None:
    """Put a record straight into the master's index, with the creation time we want."""
    index = master.service.index
    meta = ValueMeta(
        key=key,
        version=await index.next_version(),
        size=3,
        checksum=hashlib.sha256(b"abc").digest(),
        created=created,
        modified=created,
        expires=expires,
    )
    result = await index.commit(KeyRecord(meta, ("some-node",)), "", time.time())
    assert result.applied


async def search(master: Master, query: str) -> list[str]:
    status, body = await master.call(f"/extension/search{query}")
    assert status == 200, body
    return [item["key"] for item in body["data"]]


async def test_search_finds_keys_made_through_the_api_and_links_them(master_volume: Master) -> None:
    master = master_volume
    keys = ("/logs/app-1.txt", "/logs/app-2.txt", "/configs/app.toml", "/other/thing", "/é/app")
    for key in keys:
        await master.put_key(key, key.encode())
    status, body = await master.call("/extension/search/app")
    assert status == 200 and body["status"] == "ok"
    assert body["data"] == [
        {"key": key, "url": f"{master.url}/get_key{quote(key)}"}
        for key in ("/configs/app.toml", "/logs/app-1.txt", "/logs/app-2.txt", "/é/app")
    ]
    # The url reads the value back through the master.
    async with master.http.get(body["data"][1]["url"]) as resp:
        assert (resp.status, await resp.read()) == (200, b"/logs/app-1.txt")
    assert await search(master, "/logs") == ["/logs/app-1.txt", "/logs/app-2.txt"]
    assert await search(master, "/logs/app") == ["/logs/app-1.txt", "/logs/app-2.txt"]
    assert await search(master, "/%C3%A9") == ["/é/app"]
    assert await search(master, "/nothing-like-this") == []
    assert len(await search(master, "")) == 5
    assert await search(master, "/app?limit=2") == ["/configs/app.toml", "/logs/app-1.txt"]
    assert await search(master, "/app?prefix=/logs/") == ["/logs/app-1.txt", "/logs/app-2.txt"]
    today = datetime.now(UTC)
    assert len(await search(master, f"/app?eq={mdy(today)}")) == 4
    assert await search(master, f"/app?lt={mdy(today - timedelta(days=1))}") == []
    assert await search(master, f"/app?gt={mdy(today + timedelta(days=1))}") == []


async def test_dates_filter_on_the_utc_creation_day_inclusively(master: Master) -> None:
    await commit(master, "/r/jan-14", ts("2020-01-14", 23))
    await commit(master, "/r/jan-15-early", ts("2020-01-15", 0))
    await commit(master, "/r/jan-15-late", ts("2020-01-15", 23))
    await commit(master, "/r/feb-20", ts("2020-02-20"))
    await commit(master, "/r/mar-01", ts("2020-03-01"))
    await commit(master, "/x/jan-15", ts("2020-01-15"))
    await commit(master, "/r/jan-15-expired", ts("2020-01-15"), expires=time.time() - 1)

    assert await search(master, "/r/?eq=01-15-2020") == ["/r/jan-15-early", "/r/jan-15-late"]
    assert await search(master, "/r/?eq=1-15-2020") == ["/r/jan-15-early", "/r/jan-15-late"]
    assert await search(master, "?eq=01-15-2020") == [
        "/r/jan-15-early",
        "/r/jan-15-late",
        "/x/jan-15",
    ]
    assert await search(master, "/r/?lt=01-15-2020") == [
        "/r/jan-14",
        "/r/jan-15-early",
        "/r/jan-15-late",
    ]
    assert await search(master, "/r/?gt=02-20-2020") == ["/r/feb-20", "/r/mar-01"]
    assert await search(master, "/r/?gt=01-16-2020&lt=02-20-2020") == ["/r/feb-20"]
    assert await search(master, "/r/?gt=01-15-2020&lt=01-15-2020") == [
        "/r/jan-15-early",
        "/r/jan-15-late",
    ]
    # eq wins over lt and gt, as in the original.
    assert await search(master, "/r/?eq=03-01-2020&lt=01-01-2000") == ["/r/mar-01"]
    assert await search(master, "/r/?gt=03-02-2020") == []
    assert await search(master, "/jan?gt=01-01-2020&limit=2") == ["/r/jan-14", "/r/jan-15-early"]


@pytest.mark.parametrize(
    "query, message",
    [
        ("?eq=2020-01-15", "'eq' must be a date as mm-dd-yyyy"),
        ("?lt=13-01-2020", "'lt' is not a valid date"),
        ("?gt=yesterday", "'gt' must be a date"),
        ("?limit=0", "'limit' must be between 1 and 10000"),
        ("?limit=lots", "'limit' must be an integer"),
    ],
)
async def test_bad_dates_and_limits_are_400(master: Master, query: str, message: str) -> None:
    status, body = await master.call(f"/extension/search/x{query}")
    assert status == 400 and body["status"] == "ko"
    assert message in body["msg"]


def test_query_parsing() -> None:
    query = Query.from_request(["configs", "app"], {"eq": ["01-02-2021"], "lt": ["01-01-2021"]})
    assert query.term == "configs/app" and query.lt is None and query.eq is not None
    assert Query.from_request([], {"prefix": ["logs"]}).prefix == "/logs"
    with pytest.raises(ExtensionError):
        Query.from_request([], {"limit": ["10001"]})
