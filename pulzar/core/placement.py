"""Placement as pure functions: weighted rendezvous hashing.

Each node scores every key; the highest scores win. Weights (free space) tilt the scores, so a
fuller node gets proportionally fewer new keys, and adding or removing a node moves only the keys
that it wins or held. Deterministic: the same key and nodes give the same answer everywhere.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    node_id: str
    weight: float


def _score(key: str, node: Candidate) -> float:
    digest = hashlib.blake2b(f"{node.node_id}\x00{key}".encode(), digest_size=8).digest()
    # A uniform number in (0, 1), never 0 or 1.
    unit = (int.from_bytes(digest, "big") + 0.5) / 2.0**64
    return -max(node.weight, 1e-9) / math.log(unit)


def rank(key: str, nodes: Sequence[Candidate]) -> list[str]:
    """All node ids ordered by preference for `key` (best first)."""
    return [n.node_id for n in sorted(nodes, key=lambda n: _score(key, n), reverse=True)]


def place(key: str, nodes: Sequence[Candidate], copies: int) -> list[str]:
    """The `copies` distinct nodes that hold `key` (fewer if fewer nodes are given)."""
    return rank(key, nodes)[:copies]
