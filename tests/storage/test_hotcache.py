import hashlib

import pytest

from pulzar.storage.hotcache import HotValues
from pulzar.storage.records import ValueMeta
from pulzar.storage.values import ValueStore

NOW = 1_800_000_000.0


def meta(key, version, data):
    return ValueMeta(key, version, len(data), hashlib.sha256(data).digest(), modified=NOW)


@pytest.fixture
def store(tmp_path):
    s = ValueStore(tmp_path / "vol", map_size_gb=1, cache_bytes=1024 * 1024)
    yield s
    s.close()


async def test_a_read_by_version_is_served_from_memory_the_second_time(store):
    await store.put(meta("/a", 1, b"hello"), b"hello")
    first = store.get("/a", 1)
    assert store.get("/a", 1) is first
    assert len(store._hot) == 1


async def test_a_dropped_version_is_never_served_from_the_cache(store):
    await store.put(meta("/a", 1, b"one"), b"one")
    await store.put(meta("/a", 2, b"two"), b"two")
    assert store.get("/a", 1).data == b"one"
    await store.finalize("/a", 2)  # drops version 1
    assert store.get("/a", 1) is None
    assert store.get("/a", 2).data == b"two"
    await store.delete("/a", 2)
    assert store.get("/a", 2) is None


async def test_a_discarded_version_is_forgotten(store):
    await store.put(meta("/a", 1, b"one"), b"one")
    assert store.get("/a", 1) is not None
    await store.discard("/a", 1)
    assert store.get("/a", 1) is None


async def test_a_version_written_again_is_read_again(store):
    await store.put(meta("/a", 1, b"first"), b"first")
    assert store.get("/a", 1).data == b"first"
    await store.put(meta("/a", 1, b"again"), b"again")
    assert store.get("/a", 1).data == b"again"


async def test_no_cache_without_memory_for_it(tmp_path):
    s = ValueStore(tmp_path / "v", map_size_gb=1)
    try:
        await s.put(meta("/a", 1, b"x"), b"x")
        assert s.get("/a", 1) is not s.get("/a", 1)
    finally:
        s.close()


def test_a_value_read_before_a_forget_is_not_kept():
    hot: HotValues[str] = HotValues(max_bytes=100, max_value=10)
    generation = hot.generation
    hot.forget([("/a", 1)])  # a batch that dropped it committed meanwhile
    hot.keep("/a", 1, "old", 3, generation)
    assert hot.get("/a", 1) is None


def test_the_cache_keeps_to_its_size_dropping_the_least_recently_read():
    hot: HotValues[str] = HotValues(max_bytes=10, max_value=5)
    for i in range(3):
        hot.keep("/k", i, f"v{i}", 4, hot.generation)
    assert hot.get("/k", 0) is None  # 12 bytes > 10: the oldest went
    assert hot.get("/k", 1) == "v1"
    hot.keep("/k", 3, "v3", 4, hot.generation)
    assert hot.get("/k", 2) is None and hot.get("/k", 1) == "v1"
    hot.keep("/big", 1, "too large", 6, hot.generation)
    assert hot.get("/big", 1) is None
