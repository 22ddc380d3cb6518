from collections import Counter

from pulzar.core.placement import Candidate, place, rank


def test_placement_is_deterministic_and_never_repeats_a_node():
    nodes = [Candidate(f"n{i}", 100.0) for i in range(5)]
    first = place("/k", nodes, 3)
    assert first == place("/k", list(reversed(nodes)), 3)
    assert len(set(first)) == 3


def test_keys_spread_over_equal_nodes():
    nodes = [Candidate(f"n{i}", 100.0) for i in range(4)]
    counts = Counter(place(f"/key-{i}", nodes, 1)[0] for i in range(4000))
    assert all(800 < c < 1200 for c in counts.values()), counts


def test_a_node_with_more_free_space_gets_more_keys():
    nodes = [Candidate("big", 300.0), Candidate("small", 100.0)]
    counts = Counter(place(f"/key-{i}", nodes, 1)[0] for i in range(4000))
    assert 2.4 < counts["big"] / counts["small"] < 3.6


def test_removing_a_node_moves_only_its_keys():
    nodes = [Candidate(f"n{i}", 100.0) for i in range(4)]
    before = {f"/k{i}": rank(f"/k{i}", nodes)[0] for i in range(1000)}
    after = {k: rank(k, nodes[:3])[0] for k in before}
    moved = [k for k in before if before[k] != after[k]]
    assert all(before[k] == "n3" for k in moved)


def test_fewer_nodes_than_copies_gives_all_nodes():
    assert sorted(place("/k", [Candidate("a", 1.0)], 2)) == ["a"]
