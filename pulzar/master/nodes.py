"""The node registry: which volumes exist, how full they are, and whether they are alive.

States move alive -> suspect -> dead when heartbeats stop (`tick(now)`), and straight to dead
when a node's heartbeat connection drops (a process that died). A heartbeat makes a node alive
again. Time is a parameter: the runner calls `tick` with the clock, tests with any number.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class NodeState(StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a volume reports about itself on every beat."""

    node_id: str
    name: str
    url: str
    #: Data-disk use in percent (of `[volume] max_bytes` when the volume has one).
    percent: float = 0.0
    load: float = 0.0
    used_bytes: int = 0
    free_bytes: int = 0
    capacity: int = 0
    keys: int = 0
    #: Job worker processes, runs in progress (or queued) on the volume, and their ids.
    workers: int = 0
    running_jobs: int = 0
    jobs: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Heartbeat:
        return cls(
            node_id=str(body["node_id"]),
            name=str(body.get("name") or body["node_id"]),
            url=str(body["url"]).rstrip("/"),
            percent=float(body.get("percent", 0.0)),
            load=float(body.get("load", 0.0)),
            used_bytes=int(body.get("used_bytes", 0)),
            free_bytes=int(body.get("free_bytes", 0)),
            capacity=int(body.get("capacity", 0)),
            keys=int(body.get("keys", 0)),
            workers=int(body.get("workers", 0)),
            running_jobs=int(body.get("running_jobs", 0)),
            jobs=tuple(int(j) for j in body.get("jobs", ())),
        )


@dataclass
class Node:
    """A volume as the master sees it: its last heartbeat and its state."""

    beat: Heartbeat
    state: NodeState = NodeState.ALIVE
    last_seen: float = 0.0
    registered_at: float = 0.0
    #: Being emptied before it is retired: takes no new copies, its keys move away.
    draining: bool = False

    @property
    def id(self) -> str:
        return self.beat.node_id

    @property
    def name(self) -> str:
        return self.beat.name

    @property
    def url(self) -> str:
        return self.beat.url

    @property
    def alive(self) -> bool:
        return self.state is NodeState.ALIVE

    def to_json(self) -> dict[str, Any]:
        """The shape of /admin/network: the original's fields first (`synch` = alive)."""
        b = self.beat
        return {
            "node": b.name,
            "id": b.node_id,
            "url": b.url,
            "percent": round(b.percent, 2),
            "load": round(b.load, 2),
            "synch": self.alive,
            "state": self.state.value,
            "draining": self.draining,
            "last_seen": self.last_seen,
            "used_bytes": b.used_bytes,
            "free_bytes": b.free_bytes,
            "capacity": b.capacity,
            "keys": b.keys,
            "workers": b.workers,
            "running_jobs": b.running_jobs,
        }


class NodeRegistry:
    def __init__(self, suspect_after: float, dead_after: float) -> None:
        self.suspect_after = suspect_after
        self.dead_after = dead_after
        self._nodes: dict[str, Node] = {}
        #: Grows with every change of a node's heartbeat, state or draining flag (what
        #: placement reads), so that what is derived from them can be kept until it does.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._nodes)

    def heartbeat(self, beat: Heartbeat, now: float) -> Node:
        """Register the node or refresh it; a heartbeat always makes it alive."""
        node = self._nodes.get(beat.node_id)
        if node is None:
            node = Node(beat, registered_at=now)
            self._nodes[beat.node_id] = node
        node.beat = beat
        node.last_seen = now
        node.state = NodeState.ALIVE
        self.generation += 1
        return node

    def set_draining(self, node: Node, draining: bool) -> None:
        node.draining = draining
        self.generation += 1

    def load(self, known: list[Heartbeat], now: float) -> None:
        """Nodes remembered from before a restart: dead until they heartbeat, and counted
        as holders for the repair grace period from `now`."""
        for beat in known:
            if beat.node_id not in self._nodes:
                self._nodes[beat.node_id] = Node(
                    beat, state=NodeState.DEAD, last_seen=now, registered_at=now
                )
        self.generation += 1

    def disconnected(self, node_id: str) -> None:
        """The node's heartbeat connection dropped: treat it as dead until it is back."""
        node = self._nodes.get(node_id)
        if node is not None:
            node.state = NodeState.DEAD
            self.generation += 1

    def tick(self, now: float) -> list[Node]:
        """Move silent nodes to suspect, then dead; return the nodes whose state changed."""
        changed = []
        for node in self._nodes.values():
            silent = now - node.last_seen
            if silent >= self.dead_after:
                state = NodeState.DEAD
            elif silent >= self.suspect_after:
                state = NodeState.SUSPECT
            else:
                continue
            if node.state is not state and not (
                node.state is NodeState.DEAD and state is NodeState.SUSPECT
            ):
                node.state = state
                changed.append(node)
        if changed:
            self.generation += 1
        return changed

    def get(self, id_or_name: str) -> Node | None:
        node = self._nodes.get(id_or_name)
        if node is not None:
            return node
        return next((n for n in self._nodes.values() if n.name == id_or_name), None)

    def all(self) -> list[Node]:
        return sorted(self._nodes.values(), key=lambda n: n.name)

    def live(self) -> list[Node]:
        """Alive nodes (readable; draining ones included)."""
        return [n for n in self._nodes.values() if n.alive]

    def writable(self) -> list[Node]:
        """Alive nodes that take new copies."""
        return [n for n in self._nodes.values() if n.alive and not n.draining]

    def forget(self, node_id: str) -> bool:
        """Remove a node from the registry (a retired volume)."""
        self.generation += 1
        return self._nodes.pop(node_id, None) is not None
