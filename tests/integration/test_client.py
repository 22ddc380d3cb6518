"""The Python client and the CLI against real processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pulzar.cli import cli
from pulzar.client import Client
from pulzar.core.errors import (
    Conflict,
    Forbidden,
    KeyNotFound,
    PreconditionFailed,
    Unauthorized,
    Unavailable,
)

from conftest import Cluster


@pytest.fixture
def cluster(cluster_factory: Any) -> Cluster:
    return cluster_factory(volumes=2)


def test_client_puts_bytes_files_and_iterators_and_reads_them_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    big = os.urandom(3_000_000)
    path = tmp_path / "big.bin"
    path.write_bytes(big)
    with Client(cluster.master_url) as client:
        assert client.put("/c/bytes", b"abc")["version"] >= 1
        client.put("/c/text", "héllo", content_type="text/plain; charset=utf-8")
        with path.open("rb") as fh:
            client.put("/c/file", fh, size=len(big))
        client.put("/c/iter", (bytes([i]) * 1000 for i in range(50)))
        assert client.get("/c/bytes") == b"abc"
        assert client.get("/c/text") == "héllo".encode()
        assert hashlib.sha256(client.get("/c/file")).digest() == hashlib.sha256(big).digest()
        assert client.get("/c/iter") == b"".join(bytes([i]) * 1000 for i in range(50))
        target = tmp_path / "out.bin"
        assert client.download("/c/file", target) == len(big) and target.read_bytes() == big
        listed = [e["key"] for e in client.list("/c/", page_size=2)]
        assert listed == ["/c/bytes", "/c/file", "/c/iter", "/c/text"]
        stat = client.stat("/c/text")
        assert stat["content_type"] == "text/plain; charset=utf-8" and stat["size"] == 6
        assert len(client.network()) == 2 and client.status()["entries"] == 4


def test_client_errors_are_one_tree_with_helpful_messages(cluster: Cluster) -> None:
    with Client(cluster.master_url) as client:
        with pytest.raises(KeyNotFound, match="/missing"):
            client.get("/missing")
        with pytest.raises(KeyNotFound):
            client.delete("/missing")
        client.put("/once", b"1", create_only=True)
        with pytest.raises(Conflict):
            client.put("/once", b"2", create_only=True)
        with pytest.raises(PreconditionFailed):
            client.put("/once", b"2", if_match=999_999)
        etag = client.stat("/once")["etag"]
        client.put("/once", b"3", if_match=etag)
        assert client.get("/once") == b"3"
    with (
        Client("http://127.0.0.1:9", retries=1) as nowhere,
        pytest.raises(Unavailable, match="pulzar up"),
    ):
        nowhere.get("/x")


def test_client_reads_its_own_writes_and_remembers_the_volume(cluster: Cluster) -> None:
    with Client(cluster.master_url, location_ttl=60) as client:
        client.put("/loc", b"one")
        assert client.get("/loc") == b"one"
        assert "/loc" in client._locations
        client.put("/loc", b"two")
        assert client.get("/loc") == b"two"
        client.delete("/loc")
        with pytest.raises(KeyNotFound):
            client.get("/loc")


def test_client_with_a_wrong_or_missing_token_raises_the_auth_errors(
    cluster_factory: Any,
) -> None:
    secured = cluster_factory(
        volumes=1,
        settings={"PULZAR_SECURITY_TOKEN": "t0k", "PULZAR_SECURITY_READS_OPEN": "true"},
    )
    with Client(secured.master_url) as anonymous, pytest.raises(Unauthorized):
        anonymous.put("/x", b"no token")
    with Client(secured.master_url, token="wrong") as wrong, pytest.raises(Forbidden):
        wrong.put("/x", b"wrong token")
    with Client(secured.master_url, token="t0k") as client:
        client.put("/s", b"secret")
        assert client.get("/s") == b"secret"


def test_cli_through_clicks_runner_puts_gets_lists_stats_and_removes(
    cluster: Cluster, tmp_path: Path
) -> None:
    runner = CliRunner()
    source = tmp_path / "v.txt"
    source.write_bytes(b"cli value\n")
    base = ["--master", cluster.master_url]
    result = runner.invoke(cli, ["put", "/cli/a", str(source), *base])
    assert result.exit_code == 0 and "stored /cli/a" in result.output
    result = runner.invoke(cli, ["get", "/cli/a", *base])
    assert result.exit_code == 0 and result.stdout_bytes == b"cli value\n"
    result = runner.invoke(cli, ["ls", "/cli", "--json", *base])
    assert result.exit_code == 0 and '"/cli/a"' in result.output
    result = runner.invoke(cli, ["stat", "/cli/a", "--json", *base])
    assert result.exit_code == 0 and '"size": 10' in result.output
    result = runner.invoke(cli, ["admin", "network", "--json", *base])
    assert result.exit_code == 0 and result.output.count('"synch": true') == 2
    result = runner.invoke(cli, ["rm", "/cli/a", *base])
    assert result.exit_code == 0
    result = runner.invoke(cli, ["get", "/cli/a", *base])
    assert result.exit_code == 3 and "error: key not found" in result.output


def test_cli_as_a_subprocess_streams_stdin_and_exits_with_meaningful_codes(
    cluster: Cluster,
) -> None:
    def pulzar(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "pulzar", *args, "--master", cluster.master_url],
            input=data,
            capture_output=True,
            timeout=60,
            check=False,
        )

    payload = os.urandom(100_000)
    assert pulzar("put", "/sub/x", "-", data=payload).returncode == 0
    got = pulzar("get", "/sub/x")
    assert got.returncode == 0 and got.stdout == payload
    missing = pulzar("get", "/sub/missing")
    assert missing.returncode == 3
    assert missing.stderr.decode().startswith("error: ") and b"Traceback" not in missing.stderr
    bad = pulzar("get", "a//b")
    assert bad.returncode == 1 and b"empty segment" in bad.stderr
    down = subprocess.run(
        [sys.executable, "-m", "pulzar", "ls", "--master", "http://127.0.0.1:9"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 6 and b"pulzar up" in down.stderr
    assert b"Traceback" not in down.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "pulzar", "--help"], capture_output=True, timeout=60, check=False
    )
    assert helped.returncode == 0 and b"Commands:" in helped.stdout
