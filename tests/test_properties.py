"""Property tests (Hypothesis) of key handling and placement."""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from pulzar.core.errors import InvalidKey
from pulzar.core.keys import MAX_KEY_BYTES, parse_key, validate_key
from pulzar.core.placement import Candidate, place, rank
from pulzar.storage.keycodec import LIMIT, scan_prefix, stored_key

segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"),
    min_size=1,
    max_size=30,
).filter(lambda s: s not in (".", ".."))
keys = (
    st.lists(segment, min_size=1, max_size=8)
    .map(lambda parts: "/" + "/".join(parts))
    .filter(lambda k: len(k.encode()) <= MAX_KEY_BYTES)
)


@given(keys)
def test_a_valid_key_survives_percent_encoding_and_validation_unchanged(key: str) -> None:
    assert validate_key(key) == key
    assert parse_key(quote(key[1:], safe="")) == key
    assert parse_key(quote(key[1:], safe="/")) == key


@given(st.text(max_size=60))
def test_any_text_is_either_a_valid_key_or_refused_with_invalid_key(text: str) -> None:
    try:
        key = validate_key(text)
    except InvalidKey:
        return
    assert key.startswith("/") and "\x00" not in key
    assert all(part not in ("", ".", "..") for part in key[1:].split("/"))


@given(st.binary(max_size=40))
def test_raw_bytes_in_a_path_never_escape_validation(raw: bytes) -> None:
    try:
        key = parse_key("".join(f"%{b:02X}" for b in raw))
    except InvalidKey:
        return
    # The key is the bytes as they were, with a `/` put in front unless they start with one.
    assert key.encode("utf-8") == (raw if raw.startswith(b"/") else b"/" + raw)


@given(keys, keys)
def test_stored_keys_are_distinct_for_distinct_keys(a: str, b: str) -> None:
    if a != b:
        assert stored_key(a) != stored_key(b)
    assert len(stored_key(a)) <= LIMIT + 17


@given(keys, st.text(max_size=500))
def test_a_prefix_scan_finds_exactly_the_keys_with_that_prefix(key: str, tail: str) -> None:
    prefix = key[: len(key) // 2] or "/"
    pfx, check_full = scan_prefix(prefix)
    matches_stored = stored_key(key).startswith(pfx)
    if key.startswith(prefix):
        assert matches_stored
    elif matches_stored:
        assert check_full


node_ids = st.lists(
    st.text(alphabet="abcdef0123456789", min_size=4, max_size=16),
    min_size=1,
    max_size=8,
    unique=True,
)


@given(keys, node_ids, st.integers(min_value=1, max_value=8))
def test_placement_is_deterministic_distinct_and_complete(
    key: str, ids: list[str], copies: int
) -> None:
    nodes = [Candidate(i, 100.0) for i in ids]
    chosen = place(key, nodes, copies)
    assert chosen == place(key, list(reversed(nodes)), copies)
    assert len(chosen) == min(copies, len(ids)) == len(set(chosen))
    assert sorted(rank(key, nodes)) == sorted(ids)


@settings(max_examples=20)
@given(node_ids.filter(lambda ids: len(ids) >= 2))
def test_placement_moves_only_the_keys_of_a_removed_node(ids: list[str]) -> None:
    nodes = [Candidate(i, 100.0) for i in ids]
    gone = ids[0]
    for n in range(200):
        before = place(f"/k{n}", nodes, 1)[0]
        after = place(f"/k{n}", nodes[1:], 1)[0]
        assert before in (after, gone)


@settings(max_examples=10)
@given(st.integers(min_value=2, max_value=6))
def test_equal_nodes_get_roughly_equal_shares(count: int) -> None:
    nodes = [Candidate(f"node{i}", 1.0) for i in range(count)]
    shares = Counter(place(f"/key/{n}", nodes, 1)[0] for n in range(3000))
    assert min(shares.values()) > 3000 / count * 0.75
