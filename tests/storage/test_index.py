import asyncio
import hashlib

import pytest

from pulzar.core.errors import ConfigError, Conflict, KeyNotFound, PreconditionFailed
from pulzar.storage.index import Index
from pulzar.storage.lmdbenv import FORMAT_KEY
from pulzar.storage.records import KeyRecord, ValueMeta

NOW = 1_800_000_000.0


def record(key, version, data=b"x", expires=None, nodes=("n1",)):
    meta = ValueMeta(key, version, len(data), hashlib.sha256(data).digest(), "text/plain",
                     NOW, NOW, expires)
    return KeyRecord(meta, nodes)


@pytest.fixture
def index(tmp_path):
    ix = Index(tmp_path / "index", map_size_gb=1)
    yield ix
    ix.close()


async def test_commit_then_get_returns_the_record(index):
    result = await index.commit(record("/a", 1), "", NOW)
    assert result.applied and result.previous is None
    got = index.get("/a", NOW)
    assert got == record("/a", 1)


async def test_newer_version_replaces_and_reports_the_previous(index):
    await index.commit(record("/a", 1, b"old"), "", NOW)
    result = await index.commit(record("/a", 2, b"new"), "", NOW)
    assert result.applied and result.previous.meta.version == 1
    assert index.get("/a", NOW).meta.version == 2


async def test_older_version_arriving_late_is_not_applied(index):
    await index.commit(record("/a", 5), "", NOW)
    result = await index.commit(record("/a", 4), "", NOW)
    assert not result.applied
    assert index.get("/a", NOW).meta.version == 5


async def test_create_only_refuses_an_existing_key_and_changes_nothing(index):
    await index.commit(record("/a", 1, b"first"), "*", NOW)
    with pytest.raises(Conflict):
        await index.commit(record("/a", 2, b"second"), "*", NOW)
    assert index.get("/a", NOW).meta.version == 1


async def test_compare_and_swap_by_etag_and_by_version(index):
    first = record("/a", 1, b"first")
    await index.commit(first, "", NOW)
    await index.commit(record("/a", 2), f"etag:{first.meta.etag}", NOW)
    with pytest.raises(PreconditionFailed):
        await index.commit(record("/a", 3), f"etag:{first.meta.etag}", NOW)
    await index.commit(record("/a", 3), "version:2", NOW)
    with pytest.raises(PreconditionFailed):
        await index.commit(record("/a", 4), "version:2", NOW)
    with pytest.raises(PreconditionFailed):
        await index.commit(record("/missing", 5), "exists", NOW)
    assert index.get("/a", NOW).meta.version == 3


async def test_concurrent_create_only_commits_let_exactly_one_win(index):
    results = await asyncio.gather(
        *(index.commit(record("/race", v), "*", NOW) for v in range(1, 21)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception))


async def test_delete_leaves_a_tombstone_that_stops_older_versions(index):
    await index.commit(record("/a", 1), "", NOW)
    removed = await index.delete("/a", 10, NOW)
    assert removed.meta.version == 1
    assert index.get("/a", NOW) is None
    assert index.tombstone("/a") == 10
    assert not (await index.commit(record("/a", 9), "", NOW)).applied
    assert (await index.commit(record("/a", 11), "", NOW)).applied
    assert index.tombstone("/a") is None
    with pytest.raises(KeyNotFound):
        await index.delete("/missing", 12, NOW)


async def test_expired_keys_vanish_from_reads_and_listings_at_once(index):
    await index.commit(record("/t", 1, expires=NOW + 10), "", NOW)
    await index.commit(record("/u", 2), "", NOW)
    assert index.get("/t", NOW + 9) is not None
    assert index.get("/t", NOW + 10) is None
    keys, _ = index.scan("/", None, 10, NOW + 11)
    assert [r.meta.key for r in keys] == ["/u"]
    assert index.expired(NOW + 11) == [("/t", 1)]
    with pytest.raises(KeyNotFound):
        await index.delete("/u", 3, NOW + 11, expired_only=True)
    await index.delete("/t", 3, NOW + 11, expired_only=True)
    assert index.expired(NOW + 11) == []


async def test_listing_pages_cover_every_key_once_in_order(index):
    names = [f"/p/{i:03d}" for i in range(25)] + ["/q/1", "/o"]
    for v, name in enumerate(names, 1):
        await index.commit(record(name, v), "", NOW)
    seen, after = [], None
    while True:
        page, after = index.scan("/p/", after, 10, NOW)
        seen += [r.meta.key for r in page]
        if after is None:
            break
    assert seen == sorted(n for n in names if n.startswith("/p/"))
    everything, token = index.scan("/", None, 100, NOW)
    assert len(everything) == len(names) and token is None


async def test_versions_stay_monotonic_across_reopen(tmp_path):
    ix = Index(tmp_path / "i", map_size_gb=1)
    seen = [await ix.next_version() for _ in range(5)]
    ix.close()
    ix = Index(tmp_path / "i", map_size_gb=1)
    later = await ix.next_version()
    ix.close()
    assert seen == sorted(seen) and later > seen[-1]


def test_stat_counts_entries(index):
    stat = index.stat()
    assert set(stat) == {"psize", "depth", "branch_pages", "leaf_pages", "overflow_pages",
                         "entries"}
    assert stat["entries"] == 0


def test_a_store_from_a_newer_format_is_refused_with_a_clear_message(tmp_path):
    ix = Index(tmp_path / "i", map_size_gb=1)
    meta_db = ix.env.open_db(b"meta")
    with ix.env.begin(write=True, db=meta_db) as txn:
        txn.put(FORMAT_KEY, b"999")
    ix.close()
    with pytest.raises(ConfigError, match="newer Pulzar"):
        Index(tmp_path / "i", map_size_gb=1)


async def test_keys_longer_than_lmdb_allows_are_stored_listed_and_deleted(index):
    long_a = "/" + "a" * 1023
    long_b = "/" + "a" * 600 + "b"
    await index.commit(record(long_a, 1), "", NOW)
    await index.commit(record(long_b, 2), "", NOW)
    assert index.get(long_a, NOW).meta.key == long_a
    page, _ = index.scan("/" + "a" * 700, None, 10, NOW)
    assert [r.meta.key for r in page] == [long_a]
    page, _ = index.scan("/a", None, 10, NOW)
    assert sorted(r.meta.key for r in page) == sorted([long_a, long_b])
    first, token = index.scan("/a", None, 1, NOW)
    second, _ = index.scan("/a", token, 1, NOW)
    assert {first[0].meta.key, second[0].meta.key} == {long_a, long_b}
    await index.delete(long_a, 3, NOW)
    assert index.get(long_a, NOW) is None and index.tombstone(long_a) == 3


async def test_commits_made_together_each_get_their_own_result(index):
    await index.commit(record("/taken", 1), "", NOW)
    short = KeyRecord(record("/short", 3).meta, ("n1",), copies=2)
    results = await index.commit_many(
        [
            (record("/new", 2), ""),
            (record("/taken", 4), "*"),
            (record("/taken", 5), ""),
            (short, ""),
        ],
        NOW,
    )
    assert results[0].applied and results[2].applied and results[3].applied
    assert isinstance(results[1], Conflict)
    assert index.get("/new", NOW).meta.version == 2
    assert index.get("/taken", NOW).meta.version == 5
    assert index.holder_changes == 1  # the one key left with fewer copies than it asked


async def test_moving_a_copy_is_no_holder_change_but_leaving_a_key_short_is(index):
    await index.commit(KeyRecord(record("/m", 1).meta, ("n1", "n2"), copies=2), "", NOW)
    before = index.holder_changes
    assert await index.set_nodes("/m", 1, ("n1", "n3"))
    assert index.holder_changes == before
    assert await index.set_nodes("/m", 1, ("n3",))
    assert index.holder_changes == before + 1
    assert index.get("/m", NOW).nodes == ("n3",)
