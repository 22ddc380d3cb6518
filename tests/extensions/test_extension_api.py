"""The extension API: calls, arguments, bad app ids, errors, bodies (DESIGN.md section 7)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from extension_cluster import Master, MasterFactory

from pulzar.core.errors import NotFound
from pulzar.extensions import Extension, ExtensionError
from pulzar.extensions.loader import SHIPPED, find_extension

MIB = 1024 * 1024


async def test_example_echoes_arguments_and_params_as_the_original(master: Master) -> None:
    status, body = await master.call("/extension/example/arg_1/arg_2?param_1=1&param_2=2&param_2=b")
    assert status == 200
    assert body == {
        "data": {
            "my_arg": ["arg_1", "arg_2"],
            "my_params": {"param_1": ["1"], "param_2": ["2", "b"]},
        },
        "status": "ok",
        "msg": "ok",
    }


async def test_arguments_are_percent_decoded_once_and_empty_segments_dropped(
    master: Master,
) -> None:
    status, body = await master.call("/extension/example/a%2Fb//caf%C3%A9/?q=%26")
    assert status == 200
    assert body["data"] == {"my_arg": ["a/b", "café"], "my_params": {"q": ["&"]}}
    status, body = await master.call("/extension/example")
    assert (status, body["data"]) == (200, {"my_arg": [], "my_params": {}})


async def test_an_extension_written_for_the_original_runs_unchanged(master: Master) -> None:
    status, body = await master.call("/extension/legacy/x?y=1")
    assert status == 200
    assert body["data"] == {"args": ["x"], "params": {"y": ["1"]}}


async def test_an_extension_named_like_a_stdlib_module_does_not_replace_it(master: Master) -> None:
    status, body = await master.call("/extension/json")
    assert (status, body["data"]) == (200, {"stdlib_dumps": "[1]"})


@pytest.mark.parametrize(
    "path",
    [
        "/extension/os",
        "/extension/sys",
        "/extension/pulzar.core",
        "/extension/pulzar.core.config",
        "/extension/..%2Foutside",
        "/extension/%2E%2E%2Foutside",
        "/extension/..%5Coutside",
        "/extension/outside",
        "/extension/_private",
        "/extension/__init__",
        "/extension/loader",
        "/extension/runner",
        "/extension/base",
        "/extension/Example",
        "/extension/import",
        "/extension/ex%00ample",
    ],
)
async def test_an_app_id_that_is_not_a_plain_module_there_is_404_and_imports_nothing(
    master: Master, path: str
) -> None:
    # A module beside the extensions directory that leaves a mark when imported.
    marker = master.extensions.directory.parent / "imported.txt"
    (master.extensions.directory.parent / "outside.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\nclass Outside:\n    pass\n"
    )
    before = set(sys.modules)
    status, body = await master.call(path)
    assert status == 404, body
    assert body["status"] == "ko" and "no extension" in body["msg"]
    assert not marker.exists()
    assert set(sys.modules) == before
    assert master.extensions.pool.workers == []  # no worker was even started


def test_find_extension_resolves_plain_names_only_and_imports_nothing(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("raise SystemExit('must not be imported')\n")
    before = set(sys.modules)
    assert find_extension("mine", tmp_path) == tmp_path / "mine.py"
    assert find_extension("example", tmp_path).name == "example.py"
    assert find_extension("example", None).parent.name == "extensions"
    for bad in ("os", "../mine", "mine.py", "pulzar.core", "", "a b", "None", "runner", "__init__"):
        with pytest.raises(NotFound):
            find_extension(bad, tmp_path)
    assert set(sys.modules) == before
    assert set(SHIPPED) == {"example", "search", "ocr", "imagematching"}


def test_the_directory_wins_over_a_shipped_extension_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "search.py").write_text("class Search:\n    pass\n")
    assert find_extension("search", tmp_path) == tmp_path / "search.py"


async def test_extension_error_is_a_400_with_its_message(master: Master) -> None:
    status, body = await master.call("/extension/refuse/a/b")
    assert status == 400
    assert body == {"data": None, "status": "ko", "msg": "no thanks: a,b"}


def test_extension_error_carries_a_status_and_the_base_class_is_abstract() -> None:
    assert ExtensionError("gone", status=404).status == 404
    assert ExtensionError("odd", status=200).status == 400
    with pytest.raises(TypeError):
        Extension([], {}, None)  # type: ignore[abstract]


async def test_any_other_exception_is_a_500_envelope_with_its_message_and_the_server_goes_on(
    master: Master, caplog: pytest.LogCaptureFixture
) -> None:
    status, body = await master.call("/extension/boom")
    assert status == 500
    assert body["status"] == "ko" and body["data"] is None
    assert "ValueError: kaboom" in body["msg"]
    assert any("kaboom" in r.getMessage() and "Traceback" in r.getMessage() for r in caplog.records)
    status, body = await master.call("/extension/example/again")
    assert (status, body["data"]["my_arg"]) == (200, ["again"])


async def test_data_that_is_not_json_is_a_500(master: Master) -> None:
    status, body = await master.call("/extension/notjson")
    assert status == 500 and "not JSON" in body["msg"]


async def test_a_module_without_its_class_is_a_500_that_says_so(master: Master) -> None:
    status, body = await master.call("/extension/noclass")
    assert status == 500 and "defines no class Noclass" in body["msg"]


async def test_a_worker_that_dies_is_a_500_and_is_replaced(master: Master) -> None:
    status, body = await master.call("/extension/exits")
    assert status == 500 and "died" in body["msg"]
    assert master.extensions.pool.replaced == 1
    status, _ = await master.call("/extension/example")
    assert status == 200


async def test_a_put_body_is_spooled_to_a_file_that_is_removed_afterwards(master: Master) -> None:
    payload = b"hello extension " + os.urandom(200_000)
    status, body = await master.call("/extension/peek", data=io.BytesIO(payload))
    assert status == 200
    assert body["data"]["size"] == len(payload)
    assert body["data"]["head"] == "hello extension "
    spooled = Path(body["data"]["path"])
    assert spooled.parent == master.extensions.spool_dir
    assert not spooled.exists()
    # Also when the extension fails.
    status, _ = await master.call("/extension/boom", data=b"x" * 1000)
    assert status == 500
    assert list(master.extensions.spool_dir.iterdir()) == []


async def test_a_get_has_no_file_and_an_empty_put_an_empty_file(master: Master) -> None:
    status, body = await master.call("/extension/peek")
    assert status == 500 and "TypeError" in body["msg"]  # open(None)
    status, body = await master.call("/extension/peek", data=b"")
    assert (status, body["data"]["size"]) == (200, 0)


async def test_a_body_over_maxsize_is_413_and_leaves_nothing(make_master: MasterFactory) -> None:
    master = await make_master(general={"maxsize": 1})
    status, body = await master.call("/extension/peek", data=io.BytesIO(b"x" * MIB))
    assert status == 200 and body["data"]["size"] == MIB
    status, body = await master.call("/extension/peek", data=io.BytesIO(b"x" * (MIB + 1)))
    assert status == 413 and body["status"] == "ko"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while spooled
        for _ in range(5):
            yield b"y" * (256 * 1024)

    status, body = await master.call("/extension/peek", data=chunked())
    assert status == 413 and body["status"] == "ko"
    assert list(master.extensions.spool_dir.iterdir()) == []
    assert master.extensions.pool.replaced == 0


async def test_expect_100_continue_is_answered_and_refused_over_maxsize_before_the_body(
    make_master: MasterFactory,
) -> None:
    master = await make_master(general={"maxsize": 1})

    async def send(length: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", master.port)
        writer.write(
            b"PUT /extension/peek HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            b"Expect: 100-continue\r\n\r\n" % length
        )
        await writer.drain()
        return reader, writer, await asyncio.wait_for(reader.readline(), 5)

    reader, writer, status_line = await send(5)
    assert status_line.startswith(b"HTTP/1.1 100 ")
    assert await reader.readline() == b"\r\n"
    writer.write(b"hello")
    await writer.drain()
    assert b" 200 " in await asyncio.wait_for(reader.readline(), 10)
    writer.close()

    reader, writer, status_line = await send(5_000_000)
    assert b" 413 " in status_line
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
