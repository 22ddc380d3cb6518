import hashlib

import pytest

from pulzar.core.errors import InsufficientStorage
from pulzar.storage.records import ValueMeta
from pulzar.storage.values import ValueStore

NOW = 1_800_000_000.0


def meta(key, version, data, expires=None):
    return ValueMeta(key, version, len(data), hashlib.sha256(data).digest(),
                     "application/json", NOW - 100, NOW, expires)


@pytest.fixture
def store(tmp_path):
    s = ValueStore(tmp_path / "vol", map_size_gb=1)
    yield s
    s.close()


async def put_large(store, key, version, data):
    blob = store.new_blob()
    blob.write(data)
    blob.finish()
    await store.put(meta(key, version, data), None, blob)


async def test_small_value_is_inline_and_carries_its_metadata(store):
    await store.put(meta("/a", 1, b"hello"), b"hello")
    got = store.get("/a", 1)
    assert got.data == b"hello" and got.path is None
    assert got.meta == meta("/a", 1, b"hello")
    assert got.verify()


async def test_large_value_is_a_file_renamed_into_place(store):
    data = b"z" * 200_000
    await put_large(store, "/big", 3, data)
    got = store.get("/big", 3)
    assert got.data is None and got.path.read_bytes() == data
    assert got.path.is_relative_to(store.blobs)
    assert list(store.tmp.iterdir()) == []


async def test_pending_version_is_hidden_until_finalized_and_then_replaces_older(store):
    await store.put(meta("/a", 1, b"one"), b"one")
    await store.finalize("/a", 1)
    await store.put(meta("/a", 2, b"two"), b"two")
    assert store.get("/a").data == b"one"
    assert store.pending(NOW + 1) == [("/a", 2)]
    await store.finalize("/a", 2)
    assert store.get("/a").data == b"two"
    assert store.versions("/a") == [2]
    assert store.pending(NOW + 1) == []


async def test_discard_and_delete_remove_records_files_and_space(store):
    data = b"q" * 100_000
    await put_large(store, "/big", 1, data)
    await store.put(meta("/s", 2, b"small"), b"small")
    assert store.used_bytes == len(data) + 5
    path = store.get("/big", 1).path
    await store.discard("/big", 1)
    assert store.get("/big", 1) is None and not path.exists()
    assert await store.delete("/s", 2) == 1
    assert store.used_bytes == 0 and store.count() == 0


async def test_corrupt_inline_bytes_fail_verification(store, tmp_path):
    await store.put(meta("/a", 1, b"hello"), b"hello")
    stored = store.get("/a", 1)
    bad = type(stored)(stored.meta, b"jello", None)
    assert not bad.verify()


async def test_capacity_limit_refuses_what_does_not_fit(tmp_path):
    s = ValueStore(tmp_path / "v", map_size_gb=1, max_bytes=10)
    try:
        s.ensure_room(10)
        await s.put(meta("/a", 1, b"123456"), b"123456")
        with pytest.raises(InsufficientStorage):
            s.ensure_room(5)
    finally:
        s.close()


async def test_values_and_space_survive_reopen_and_temp_files_are_cleaned(tmp_path):
    s = ValueStore(tmp_path / "v", map_size_gb=1)
    await s.put(meta("/a", 1, b"abc"), b"abc")
    leftover = s.new_blob()
    leftover.write(b"partial")
    s.close()
    s = ValueStore(tmp_path / "v", map_size_gb=1)
    try:
        assert s.get("/a", 1).data == b"abc"
        assert s.used_bytes == 3
        assert list(s.tmp.iterdir()) == []
    finally:
        s.close()


async def test_key_prefix_does_not_leak_into_another_key(store):
    await store.put(meta("/a", 1, b"a"), b"a")
    await store.finalize("/a", 1)
    await store.put(meta("/a/b", 2, b"ab"), b"ab")
    await store.finalize("/a/b", 2)
    assert store.get("/a").data == b"a"
    assert store.versions("/a") == [1]
    assert store.get("/a/b").data == b"ab"


async def test_a_failing_disk_write_gives_insufficient_storage_not_a_crash(tmp_path):
    s = ValueStore(tmp_path / "v", map_size_gb=1, max_bytes=1)
    try:
        with pytest.raises(InsufficientStorage):
            s.ensure_room(2)
    finally:
        s.close()


async def test_long_keys_keep_their_versions_apart_and_come_back_whole(store):
    base = "/" + "x" * 399
    long_key = base + "y" * 600
    await store.put(meta(base, 1, b"short"), b"short")
    await store.finalize(base, 1)
    await store.put(meta(long_key, 2, b"long"), b"long")
    await store.finalize(long_key, 2)
    assert store.get(base).data == b"short"
    assert store.get(long_key).data == b"long"
    assert store.versions(base) == [1]
    keys = sorted(v.meta.key for v in store.iter_values())
    assert keys == sorted([base, long_key])
    await store.delete(long_key, 5)
    assert dict(store.tombstones()) == {long_key: 5}


async def test_a_value_larger_than_the_free_disk_is_refused_even_right_after_a_check(tmp_path):
    s = ValueStore(tmp_path / "v", map_size_gb=1)
    try:
        s.ensure_room(1000)  # the disk's free space is now known (and kept for a while)
        free = s.free_bytes()
        for _ in range(3):
            with pytest.raises(InsufficientStorage):
                s.ensure_room(free + 10**12)
        s.ensure_room(1000)
    finally:
        s.close()


async def test_values_stored_together_are_each_pending_with_their_bytes(store):
    values = [(meta(f"/m{i}", i, b"v%d" % i), b"v%d" % i, NOW) for i in range(1, 4)]
    await store.put_many(values)
    for m, data, _ in values:
        got = store.get(m.key, m.version)
        assert got.data == data and got.meta == m
        assert store.is_pending(m.key, m.version)
    assert store.used_bytes == sum(len(d) for _, d, _ in values)


async def test_space_in_use_written_once_a_batch_survives_reopen(tmp_path):
    s = ValueStore(tmp_path / "v", map_size_gb=1)
    values = [(meta(f"/m{i}", i, b"x" * i * 10), b"x" * i * 10, NOW) for i in range(1, 5)]
    await s.put_many(values)
    await s.discard("/m2", 2)
    s.close()
    s = ValueStore(tmp_path / "v", map_size_gb=1)
    try:
        assert s.used_bytes == 10 + 30 + 40
    finally:
        s.close()


async def test_a_failed_write_batch_leaves_the_space_in_use_as_stored(tmp_path):
    import asyncio
    import threading

    s = ValueStore(tmp_path / "v", map_size_gb=1)
    try:
        await s.put(meta("/a", 1, b"a" * 100), b"a" * 100)
        ran, release = threading.Event(), threading.Event()

        def hold(txn):  # keeps the writer busy while the next batch gathers
            ran.set()
            release.wait(5)

        held = asyncio.ensure_future(s._writer.write(hold))
        assert await asyncio.to_thread(ran.wait, 5)
        put = s.put_soon(meta("/b", 1, b"b" * 50), b"b" * 50, NOW)

        def fail(txn):  # an error that fails the whole batch
            raise SystemExit("the batch fails")

        bad = s._writer.submit(fail)
        release.set()
        await held
        results = await asyncio.gather(put, bad, return_exceptions=True)
        assert all(isinstance(r, BaseException) for r in results)
        assert s.used_bytes == 100
    finally:
        s.close()
    s = ValueStore(tmp_path / "v", map_size_gb=1)
    try:
        assert s.used_bytes == 100
    finally:
        s.close()


async def test_a_finalized_version_reads_as_committed_while_its_batch_is_being_written(store):
    """The finalize runs inside a write batch; until that batch is durable the version must
    still read as committed (it was acknowledged), not as pending."""
    import asyncio
    import threading

    await store.put(meta("/f", 1, b"new"), b"new")
    store.finalize_later("/f", 1)
    ran, release = threading.Event(), threading.Event()

    def hold(txn):  # rides in the same batch as the finalize, after it
        ran.set()
        release.wait(5)

    held = asyncio.ensure_future(store._writer.write(hold))
    assert await asyncio.to_thread(ran.wait, 5)
    try:
        got = store.get("/f")
        assert got is not None and got.data == b"new"
    finally:
        release.set()
        await held
    assert store.get("/f").data == b"new" and not store.is_pending("/f", 1)
