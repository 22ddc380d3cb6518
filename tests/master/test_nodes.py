from pulzar.master.nodes import Heartbeat, NodeRegistry, NodeState


def beat(node_id="n1", **kw):
    return Heartbeat(node_id=node_id, name=f"name-{node_id}", url=f"http://{node_id}", **kw)


def test_heartbeat_registers_an_alive_node_findable_by_id_or_name():
    reg = NodeRegistry(suspect_after=3, dead_after=6)
    reg.heartbeat(beat(percent=12.5, free_bytes=100), now=0)
    assert reg.get("n1").alive and reg.get("name-n1") is reg.get("n1")
    assert reg.get("n1").to_json()["synch"] is True
    assert reg.get("n1").beat.percent == 12.5


def test_silent_node_becomes_suspect_then_dead_and_leaves_the_live_set():
    reg = NodeRegistry(suspect_after=3, dead_after=6)
    reg.heartbeat(beat(), now=0)
    assert reg.tick(2.9) == []
    assert [n.state for n in reg.tick(3.0)] == [NodeState.SUSPECT]
    assert reg.live() == []
    assert [n.state for n in reg.tick(6.0)] == [NodeState.DEAD]
    assert reg.tick(7.0) == []


def test_heartbeat_brings_a_dead_node_back():
    reg = NodeRegistry(suspect_after=3, dead_after=6)
    reg.heartbeat(beat(), now=0)
    reg.tick(10)
    reg.heartbeat(beat(), now=11)
    assert reg.get("n1").state is NodeState.ALIVE


def test_dropped_connection_means_dead_at_once():
    reg = NodeRegistry(suspect_after=3, dead_after=6)
    reg.heartbeat(beat("a"), now=0)
    reg.heartbeat(beat("b"), now=0)
    reg.disconnected("a")
    assert [n.id for n in reg.live()] == ["b"]
    assert reg.get("a").to_json()["synch"] is False


def test_every_change_placement_reads_moves_the_generation():
    reg = NodeRegistry(suspect_after=3, dead_after=6)
    seen = [reg.generation]

    def changed() -> bool:
        seen.append(reg.generation)
        return seen[-1] != seen[-2]

    reg.heartbeat(beat(), now=0)
    assert changed()
    reg.set_draining(reg.get("n1"), True)
    assert changed()
    reg.tick(now=1)
    assert not changed()  # nothing to change yet
    reg.tick(now=10)
    assert changed()
    reg.heartbeat(beat(), now=10)
    reg.disconnected("n1")
    assert changed()
    reg.forget("n1")
    assert changed()
