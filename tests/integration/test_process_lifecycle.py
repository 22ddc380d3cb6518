"""Starting and stopping the server processes: `pulzar up` on signals, bad configuration."""

from __future__ import annotations

import signal

import pytest


@pytest.mark.parametrize(
    ("sig", "group"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)],
    ids=["sigterm", "sigint", "ctrl-c-to-the-process-group"],
)
def test_pulzar_up_stops_cleanly_on_a_signal_leaving_no_process(pulzar_up, sig, group):
    up = pulzar_up(volumes=2)
    pids = [child.pid for child in up.children]

    took = up.stop(sig, group=group)

    assert up.popen.returncode == 0, up.tail()
    assert not up.alive_children(), f"still running: {up.alive_children()} of {pids}"
    # `pulzar up` SIGKILLs what is still running after 10 s; a clean stop is much faster.
    assert took < 8, f"stopping took {took:.1f} s:\n{up.tail()}"
    assert "Traceback" not in up.tail(200)


BAD_SETTINGS = [
    ("PULZAR_GENERAL_MAXSIZE", "abc", "maxsize"),
    ("PULZAR_TIMERS_HEARTBEAT", "-1", "heartbeat"),
    ("PULZAR_SERVER_ACCESS_LOG", "maybe", "access_log"),
]


@pytest.mark.parametrize("command", ["master", "volume", "up"])
@pytest.mark.parametrize(("name", "value", "mentioned"), BAD_SETTINGS)
def test_a_bad_setting_stops_the_start_with_one_clear_line(
    tmp_path, run_pulzar, free_ports, command, name, value, mentioned
):
    port = free_ports(3)
    args = {
        "master": ["master", "--port", str(port), "--data", str(tmp_path / "m")],
        "volume": [
            "volume",
            "--master",
            f"http://127.0.0.1:{port}",
            "--port",
            str(port + 1),
            "--data",
            str(tmp_path / "v"),
        ],
        "up": ["up", "--port", str(port), "--data", str(tmp_path / "up")],
    }[command]
    done = run_pulzar(args, {"PULZAR_CLUSTER_SECRET": "s", name: value}, cwd=tmp_path)

    stderr = done.stderr.decode(errors="replace")
    assert done.returncode != 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert mentioned in lines[0], lines[0]
    assert value in lines[0] or "must" in lines[0], lines[0]
    assert done.stdout == b""
