"""The curl lines of the original README's "Methods" (and "Maintenance") sections, run as
written with the real curl binary against `pulzar up`: only the host, port, key and file change.

The module shares one `pulzar up`; at the end it is stopped with SIGTERM and must exit with 0,
leaving no child process behind (checked in the `shared_up` fixture's teardown).
"""

from __future__ import annotations

import shlex
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

# Verbatim from the original README (the second line's closing quote, missing there, added).
ADD_KEY = "curl -X PUT -L -T /path/to/file http://master:[port]/add_key/{key}"
ADD_KEY_DATA_BINARY = (
    "curl --request PUT --location --data-binary '@/path/to/file' "
    "'http://master:[port]/add_key/{key}'"
)
ADD_KEY_TEMPORAL = (
    "curl -X PUT -L -T /path/to/file http://master:[port]/add_key/{key}?temporal={int}"
)
GET_NODE = "curl -X GET -L http://master:[port]/get_node/my_key.txt"
PUT_GET_NODE = "curl -X PUT -T /path/to/file/my_key.txt -L http://master:[port]/get_node/my_key.txt"
GET_KEY = "curl -X GET -L http://master:[port]/get_key/{key}"
DELETE_KEY = "curl -X DELETE -L http://master:[port]/delete_key/{key}"
ADMIN_STATUS = "curl -X GET -L http://master:[port]/admin/status"
ADMIN_NETWORK = "curl -X GET -L http://master:[port]/admin/network"
ADMIN_NODE = "curl -X GET -L http://master:[port]/admin/network/{node_id}"

DAY = 86400.0


def readme_line(template: str, port: int, **values: str) -> list[str]:
    """A README line with our host and port, the key, and a real file, split like a shell."""
    line = template.replace("master:[port]", f"127.0.0.1:{port}")
    if "file" in values:
        line = line.replace("/path/to/file/my_key.txt", values["file"])
        line = line.replace("/path/to/file", values["file"])
    for name, value in values.items():
        line = line.replace("{" + name + "}", value)
    args = shlex.split(line)
    assert args[0] == "curl"
    return args[1:]


def assert_envelope(body: Any, status: str = "ok") -> Any:
    assert isinstance(body, dict) and {"data", "status", "msg"} <= set(body), body
    assert body["status"] == status, body
    assert isinstance(body["msg"], str)
    return body["data"]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def value_file(tmp_path: Path) -> tuple[Path, bytes]:
    """A file whose bytes a careless upload would change: CR, LF, NUL, high bytes."""
    data = b"line 1\r\nline 2\n\x00\x01\xff\xfe binary tail " + bytes(range(256)) * 8
    path = tmp_path / "value.bin"
    path.write_bytes(data)
    return path, data


def test_put_with_upload_file_follows_the_redirect_and_answers_201(shared_up, curl, value_file):
    path, data = value_file
    port = shared_up.port
    result = curl(readme_line(ADD_KEY, port, key="readme/upload.bin", file=str(path)))
    assert result.status == 201, result
    body = result.json()
    added = assert_envelope(body)
    assert body["msg"] == "key added"
    assert added["url"] == f"http://127.0.0.1:{port}/get_key/readme/upload.bin"

    read = curl(readme_line(GET_KEY, port, key="readme/upload.bin"))
    assert read.status == 200
    assert read.body == data


def test_put_with_data_binary_stores_the_bytes_exactly(shared_up, curl, value_file):
    path, data = value_file
    port = shared_up.port
    result = curl(readme_line(ADD_KEY_DATA_BINARY, port, key="readme/binary.bin", file=str(path)))
    assert result.status == 201, result
    assert assert_envelope(result.json())["url"].endswith("/get_key/readme/binary.bin")

    read = curl(readme_line(GET_KEY, port, key="readme/binary.bin"))
    assert (read.status, read.body) == (200, data)


def test_put_with_temporal_stores_a_value_that_expires_after_that_many_days(
    shared_up, curl, value_file
):
    path, data = value_file
    port = shared_up.port
    result = curl(
        readme_line(ADD_KEY_TEMPORAL, port, key="readme/temporal.bin", file=str(path), int="2")
    )
    assert result.status == 201, result
    assert_envelope(result.json())

    stat = curl(["-L", f"http://127.0.0.1:{port}/stat_key/readme/temporal.bin"])
    meta = assert_envelope(stat.json())
    assert meta["expires"] is not None
    assert abs(epoch(meta["expires"]) - epoch(meta["modified"]) - 2 * DAY) < 60
    read = curl(readme_line(GET_KEY, port, key="readme/temporal.bin"))
    assert (read.status, read.body) == (200, data)


def test_get_node_gives_a_volume_url_that_takes_a_direct_upload(shared_up, curl, value_file):
    path, data = value_file
    port = shared_up.port
    result = curl(readme_line(GET_NODE, port))
    assert result.status == 200, result
    node_url = assert_envelope(result.json())["node"]
    parts = urlsplit(node_url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port in range(port + 1, port + 1 + shared_up.volumes)
    assert parts.path == "/add_key/my_key.txt"

    # "Use the node URL to store the file"
    upload = curl(["-X", "PUT", "-L", "-T", str(path), node_url])
    assert upload.status == 201, upload
    assert assert_envelope(upload.json())["url"] == f"http://127.0.0.1:{port}/get_key/my_key.txt"
    read = curl(readme_line(GET_KEY, port, key="my_key.txt"))
    assert (read.status, read.body) == (200, data)


def test_temporal_appended_to_a_get_node_url_sets_the_expiry(shared_up, curl, value_file):
    path, _ = value_file
    port = shared_up.port
    node_url = assert_envelope(
        curl(["-X", "GET", "-L", f"http://127.0.0.1:{port}/get_node/readme/node-ttl.bin"]).json()
    )["node"]
    upload = curl(["-X", "PUT", "-L", "-T", str(path), node_url + "&temporal=3"])
    assert upload.status == 201, upload

    meta = assert_envelope(curl([f"http://127.0.0.1:{port}/stat_key/readme/node-ttl.bin"]).json())
    assert meta["expires"] is not None
    assert abs(epoch(meta["expires"]) - epoch(meta["modified"]) - 3 * DAY) < 60


def test_put_to_get_node_stores_the_file_like_add_key(shared_up, curl, tmp_path):
    path = tmp_path / "my_key.txt"
    path.write_bytes(b"the README's get_node upload\n")
    port = shared_up.port
    result = curl(readme_line(PUT_GET_NODE, port, file=str(path)))
    assert result.status == 201, result
    body = result.json()
    assert_envelope(body)
    assert body["msg"] == "key added"

    read = curl(readme_line(GET_KEY, port, key="my_key.txt"))
    assert (read.status, read.body) == (200, path.read_bytes())


def test_delete_removes_the_key_and_a_later_get_answers_a_404_envelope(shared_up, curl, value_file):
    path, _ = value_file
    port = shared_up.port
    key = "readme/deleted.bin"
    assert curl(readme_line(ADD_KEY, port, key=key, file=str(path))).status == 201

    deleted = curl(readme_line(DELETE_KEY, port, key=key))
    assert deleted.status == 200, deleted
    body = deleted.json()
    assert_envelope(body)
    assert body["msg"] == "key deleted"

    missing = curl(readme_line(GET_KEY, port, key=key))
    assert missing.status == 404
    assert assert_envelope(missing.json(), "ko") is None
    assert "not found" in missing.json()["msg"]
    again = curl(readme_line(DELETE_KEY, port, key=key))
    assert again.status == 404
    assert_envelope(again.json(), "ko")


def test_admin_status_reports_the_lmdb_stat_of_the_key_index(shared_up, curl, value_file):
    path, _ = value_file
    port = shared_up.port
    assert curl(readme_line(ADD_KEY, port, key="readme/status.bin", file=str(path))).status == 201

    result = curl(readme_line(ADMIN_STATUS, port))
    assert result.status == 200
    stat = assert_envelope(result.json())
    for field in ("psize", "depth", "branch_pages", "leaf_pages", "overflow_pages", "entries"):
        assert isinstance(stat[field], int) and stat[field] >= 0, (field, stat)
    assert stat["psize"] >= 512 and stat["psize"] & (stat["psize"] - 1) == 0
    assert stat["entries"] >= 1
    assert stat["depth"] >= 1


def test_admin_network_lists_every_volume_as_alive(shared_up, curl):
    port = shared_up.port
    result = curl(readme_line(ADMIN_NETWORK, port))
    assert result.status == 200
    nodes = assert_envelope(result.json())
    assert len(nodes) == shared_up.volumes
    urls = {f"http://127.0.0.1:{port + i}" for i in range(1, shared_up.volumes + 1)}
    assert {n["url"] for n in nodes} == urls
    for node in nodes:
        assert node["synch"] is True
        assert isinstance(node["node"], str) and node["node"]
        assert 0 <= node["percent"] <= 100
        assert isinstance(node["load"], int | float)


def test_admin_network_node_answers_by_id_and_by_name(shared_up, curl):
    port = shared_up.port
    nodes = assert_envelope(curl(readme_line(ADMIN_NETWORK, port)).json())
    for node in nodes:
        by_id = curl(readme_line(ADMIN_NODE, port, node_id=node["id"]))
        assert by_id.status == 200
        by_name = curl(readme_line(ADMIN_NODE, port, node_id=node["node"]))
        assert by_name.status == 200
        for answer in (by_id, by_name):
            one = assert_envelope(answer.json())
            assert (one["id"], one["node"], one["url"]) == (node["id"], node["node"], node["url"])
            assert one["synch"] is True
            assert "percent" in one

    unknown = curl(readme_line(ADMIN_NODE, port, node_id="no-such-node"))
    assert unknown.status == 404
    assert_envelope(unknown.json(), "ko")
