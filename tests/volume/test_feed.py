"""An upload's bytes handed to its replicas from memory: every reader gets every byte in order,
the upload waits while a reader lags more than the window, a reader that stops (or hangs for
its patience) holds nothing back, and a failed upload stops the readers with an error."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from pulzar.storage.values import BlobWriter
from pulzar.volume.feed import FeedReader, UploadFeed


async def read_all(reader: FeedReader) -> bytes:
    return b"".join([chunk async for chunk in reader.chunks()])


async def test_every_reader_gets_every_byte_in_order() -> None:
    feed = UploadFeed(patience=5, window=100)
    readers = [asyncio.ensure_future(read_all(feed.reader())) for _ in range(2)]
    sent = [bytes([i]) * 30 for i in range(10)]
    for i in range(0, 10, 2):
        feed.put(sent[i : i + 2])
        await feed.room()
    feed.finish()
    assert await asyncio.gather(*readers) == [b"".join(sent)] * 2


async def test_the_upload_waits_while_a_reader_lags_more_than_the_window() -> None:
    feed = UploadFeed(patience=5, window=100)
    reader = feed.reader()
    chunks = reader.chunks()
    feed.put([b"a" * 80, b"b" * 80])
    waiting = asyncio.ensure_future(feed.room())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    assert await anext(chunks) == b"a" * 80
    assert await anext(chunks) == b"b" * 80  # taking the next one frees the first
    await asyncio.wait_for(waiting, 1)
    reader.close()


async def test_a_reader_that_stops_holds_the_upload_back_no_more() -> None:
    feed = UploadFeed(patience=5, window=100)
    stopped, going = feed.reader(), feed.reader()
    rest = asyncio.ensure_future(read_all(going))
    feed.put([b"x" * 150])
    waiting = asyncio.ensure_future(feed.room())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # `stopped` has not taken the chunk
    stopped.close()
    await asyncio.wait_for(waiting, 1)
    feed.finish()
    assert await rest == b"x" * 150


async def test_a_reader_that_takes_nothing_for_its_patience_is_given_up() -> None:
    feed = UploadFeed(patience=0.1, window=100)
    reader = feed.reader()
    given_up = asyncio.Event()
    reader.on_stuck = given_up.set
    chunks = reader.chunks()
    feed.put([b"a" * 80, b"b" * 80])
    assert await anext(chunks) == b"a" * 80  # and then the request sending it hangs
    waiting = asyncio.ensure_future(feed.room())
    await asyncio.wait_for(given_up.wait(), 2)
    await asyncio.wait_for(waiting, 1)  # the upload goes on without it
    await chunks.aclose()


async def test_a_reader_that_never_takes_its_first_chunk_is_given_up_by_the_upload() -> None:
    """Its request may not be sending yet (waiting for a connection): the upload's wait is
    bounded all the same."""
    feed = UploadFeed(patience=0.1, window=100)
    waiting, going = feed.reader(), feed.reader()
    given_up = asyncio.Event()
    waiting.on_stuck = given_up.set
    rest = asyncio.ensure_future(read_all(going))
    feed.put([b"x" * 150])
    await asyncio.wait_for(feed.room(), 2)
    assert given_up.is_set()
    feed.finish()
    assert await rest == b"x" * 150


async def test_a_failed_upload_stops_its_readers_with_an_error() -> None:
    feed = UploadFeed(patience=5, window=100)
    reading = asyncio.ensure_future(read_all(feed.reader()))
    feed.put([b"x" * 10])
    await asyncio.sleep(0.01)
    feed.fail()
    with pytest.raises(OSError, match="failed"):
        await reading
    await asyncio.wait_for(feed.room(), 1)  # nothing waits on a failed feed


def test_a_blob_holds_every_chunk_when_the_disk_takes_a_few_bytes_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.writev
    calls = []

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        assert len(buffers) <= 1024  # the system's limit on buffers a call
        return real(fd, [bytes(b"".join(buffers)[:7])])

    monkeypatch.setattr(os, "writev", short_writev)
    chunks = [bytes([i % 256]) * (i % 5) for i in range(3000)]
    blob = BlobWriter(tmp_path)
    blob.write(*chunks)
    blob.finish()
    assert blob.path.read_bytes() == b"".join(chunks)
    assert max(calls) == 1024


def test_a_blob_written_in_several_chunks_holds_them_joined_with_their_checksum(
    tmp_path: Path,
) -> None:
    chunks = [b"", b"first ", bytes(range(256)) * 1000, b"", b"last"]
    blob = BlobWriter(tmp_path)
    blob.write(*chunks)
    blob.write(b"more")
    blob.finish()
    whole = b"".join(chunks) + b"more"
    assert blob.path.read_bytes() == whole
    assert blob.size == len(whole)
    assert blob.checksum == hashlib.sha256(whole).digest()
