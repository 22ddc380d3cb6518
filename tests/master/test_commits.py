"""A commit as it travels from a volume to the master: read back field for field, refused
with a 400 that says why when it is not one."""

from __future__ import annotations

from typing import Any

import pytest

from pulzar.core.errors import BadRequest
from pulzar.master import commits
from pulzar.storage.records import KeyRecord, ValueMeta

META = ValueMeta("/a/b", 7, 3, bytes(range(32)), "text/plain", 10.0, 11.5, 99.0)


def _commit(**changes: Any) -> dict[str, Any]:
    body = {**META.to_json(), "nodes": ["n1", "n2"], "copies": 2, "condition": "*"}
    body.update(changes)
    return body


def test_a_commit_is_read_back_as_the_volume_wrote_it() -> None:
    assert commits.parse(_commit()) == (KeyRecord(META, ("n1", "n2"), 2), "*")
    assert ValueMeta.from_json(META.to_json()) == META


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"checksum": "abcd"}, "SHA-256"),
        ({"checksum": "zz" * 32}, "hex"),
        ({"version": 2**64}, "64-bit"),
        ({"version": -1}, "64-bit"),
        ({"size": -3}, "64-bit"),
        ({"version": "seven"}, "invalid literal"),
        ({"created": None}, "float"),
        ({"nodes": 5}, "not iterable"),
        ({"key": None, "version": None}, "int"),
    ],
)
def test_a_malformed_commit_is_a_400_that_says_what_is_wrong(
    changes: dict[str, Any], why: str
) -> None:
    with pytest.raises(BadRequest, match="malformed commit") as raised:
        commits.parse(_commit(**changes))
    assert why in raised.value.message


def test_a_commit_without_nodes_or_with_too_many_copies_is_refused() -> None:
    with pytest.raises(BadRequest, match="name the nodes"):
        commits.parse(_commit(nodes=[]))
    with pytest.raises(BadRequest, match="between 1 and 16"):
        commits.parse(_commit(copies=17))


def test_metadata_that_is_not_an_object_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="JSON object"):
        ValueMeta.from_json(["/a", 1])
