"""When the repair loop walks the index: only when something could have left a key short."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pulzar.core.config import Config
from pulzar.master.nodes import Heartbeat, NodeRegistry
from pulzar.master.repair import Repairer
from pulzar.master.service import MasterService
from pulzar.storage.index import Index
from pulzar.storage.records import KeyRecord, ValueMeta

NOW = 1_800_000_000.0


class Counted:
    """The master's index, counting the passes that walk it."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.scans = 0
        self._scan = index.scan

        def scan(*args: Any) -> Any:
            if args[1] is None:  # the first batch of a pass
                self.scans += 1
            return self._scan(*args)

        index.scan = scan  # type: ignore[method-assign]


def record(key: str, version: int, nodes: tuple[str, ...], copies: int = 2) -> KeyRecord:
    data = key.encode()
    meta = ValueMeta(key, version, len(data), hashlib.sha256(data).digest(), "x", NOW, NOW, None)
    return KeyRecord(meta, nodes, copies)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Repairer, Counted, NodeRegistry]]:
    index = Index(tmp_path / "index", map_size_gb=1)
    nodes = NodeRegistry(suspect_after=3, dead_after=6)
    for node_id in ("a", "b"):
        nodes.heartbeat(Heartbeat(node_id=node_id, name=node_id, url="http://127.0.0.1:9"), NOW)
    service = MasterService(Config(), index, nodes, "s" * 32)
    counted = Counted(index)
    yield Repairer(service, grace=1.0, parallel=1, bandwidth=0), counted, nodes
    await service.volumes.close()
    index.close()


async def test_a_started_master_walks_the_index_when_something_changes_or_after_ten_minutes(
    setup: Any,
) -> None:
    repairer, counted, _ = setup
    await counted.index.commit(record("/k", 1, ("a", "b")), "", NOW)
    await repairer.step(NOW)
    await repairer.step(NOW + 5)
    assert counted.scans == 0
    await repairer.step(NOW + 600)  # the safety pass
    await repairer.step(NOW + 605)
    assert counted.scans == 1
    assert repairer.progress.under_replicated == 0


async def test_the_safety_pass_comes_ten_minutes_after_the_last_one(setup: Any) -> None:
    repairer, counted, _ = setup
    await repairer.step(NOW)
    await repairer.step(NOW + 600)
    await repairer.step(NOW + 1199)
    assert counted.scans == 1
    await repairer.step(NOW + 1201)
    assert counted.scans == 2


async def test_a_node_going_away_makes_the_next_pass_walk_the_index(setup: Any) -> None:
    repairer, counted, nodes = setup
    await counted.index.commit(record("/k", 1, ("a", "b")), "", NOW)
    await repairer.step(NOW)
    nodes.disconnected("b")
    await repairer.step(NOW + 0.5)  # dead, within the grace: no longer live
    await repairer.step(NOW + 2)  # past the grace: no longer a holder
    assert counted.scans == 2
    assert repairer.progress.under_replicated == 1


async def test_a_node_known_before_a_restart_that_never_comes_back_brings_a_pass(
    setup: Any,
) -> None:
    repairer, counted, nodes = setup
    nodes.load([Heartbeat(node_id="c", name="c", url="http://127.0.0.1:9")], NOW)
    await counted.index.commit(record("/k", 1, ("a", "c")), "", NOW)
    await repairer.step(NOW)
    await repairer.step(NOW + 0.5)
    assert counted.scans == 0
    await repairer.step(NOW + 2)  # c dead past the grace
    assert counted.scans == 1 and repairer.progress.under_replicated == 1


async def test_a_write_short_of_its_copies_makes_the_next_pass_walk_the_index(
    setup: Any,
) -> None:
    repairer, counted, _ = setup
    await repairer.step(NOW)
    await counted.index.commit(record("/full", 1, ("a", "b")), "", NOW)
    await repairer.step(NOW + 1)
    assert counted.scans == 0
    await counted.index.commit(record("/short", 2, ("a",)), "", NOW)
    await repairer.step(NOW + 2)
    assert counted.scans == 1


async def test_a_node_coming_back_does_not_make_the_index_walked(setup: Any) -> None:
    repairer, counted, nodes = setup
    nodes.disconnected("b")
    await repairer.step(NOW)
    nodes.heartbeat(Heartbeat(node_id="b", name="b", url="http://127.0.0.1:9"), NOW + 1)
    await repairer.step(NOW + 1)
    assert counted.scans == 0


async def test_nodes_coming_back_refresh_the_count_of_unavailable_keys(setup: Any) -> None:
    repairer, counted, nodes = setup
    await counted.index.commit(record("/k", 1, ("a", "b")), "", NOW)
    await repairer.step(NOW)
    nodes.disconnected("a")
    nodes.disconnected("b")
    await repairer.step(NOW + 0.1)
    assert counted.scans == 1 and repairer.progress.unavailable == 1
    await repairer.step(NOW + 0.5)  # nothing changed: no pass
    assert counted.scans == 1
    nodes.heartbeat(Heartbeat(node_id="a", name="a", url="http://127.0.0.1:9"), NOW + 0.6)
    await repairer.step(NOW + 0.7)
    assert counted.scans == 2 and repairer.progress.unavailable == 0


async def test_the_last_pass_is_reported_only_once_a_pass_ran(setup: Any) -> None:
    repairer, counted, nodes = setup
    await counted.index.commit(record("/k", 1, ("a", "b")), "", NOW)
    await repairer.step(NOW)
    await repairer.step(NOW + 1)
    assert counted.scans == 0 and repairer.progress.last_pass is None
    nodes.disconnected("b")
    await repairer.step(NOW + 2)
    assert counted.scans == 1 and repairer.progress.last_pass is not None
