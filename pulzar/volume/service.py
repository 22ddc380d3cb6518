"""The volume's service object: receive a value, copy it to the replicas, commit it.

Write order (DESIGN.md section 2), and what a crash between the steps leaves:
1. the body is streamed to a temp file (or memory, for a small value) with its checksum;
   a crash: a temp file, removed at the next start.
2. the value is made durable here as *pending* (fsync, rename, LMDB commit);
   a crash: a pending value that the master never heard of, settled (dropped) at the next start.
3. the other replicas store it too, in parallel (a small value, in memory, is sent while
   step 2 runs); a crash: pending copies there, settled the same.
4. the master commits the key: from here on it is visible, and the client gets its 201;
   a crash before the answer: the key is committed and readable, the client saw an error, and
   a retry with the same ticket writes the same version again (harmless).
5. the copies are finalized (older versions dropped) in the background; if that is lost,
   settling with the master at the next start finalizes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import orjson

from pulzar.core.config import Config
from pulzar.core.errors import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    PulzarError,
    RequestTimeout,
    Unavailable,
    error_for_status,
)
from pulzar.core.tickets import WriteTicket, verify_ticket
from pulzar.http import tls
from pulzar.http.internal import signed_headers
from pulzar.jobs.channel import Channel, ChannelClosed, ChannelError
from pulzar.storage.lmdbenv import storage_error
from pulzar.storage.records import ValueMeta
from pulzar.storage.values import BlobWriter, StoredValue, ValueStore
from pulzar.volume.batching import Coalescer, ReplicaEntry, pack_replicas, replicas_per_batch
from pulzar.volume.feed import FeedReader, UploadFeed
from pulzar.volume.peers import PeerLinks

log = logging.getLogger(__name__)

_FORM = "application/x-www-form-urlencoded"
# Bytes gathered before a disk write is handed to a thread (hashing releases the GIL there).
_WRITE_BATCH = 1024 * 1024
#: At most this many reads go into a batch as they are; more are joined (see `_read_body`).
_MAX_PARTS = 1024
#: A slow upload's bytes go to its replicas at least this often, batch or no batch (seconds;
#: more often with a body timeout under 4 s, since a replica waits that long for bytes).
_FEED_EVERY = 1.0


def stored_content_type(given: str | None) -> str:
    """Content-Type as given, except curl's default for --data-binary (served as bytes)."""
    if not given or given.split(";", 1)[0].strip().lower() == _FORM:
        return "application/octet-stream"
    return given


async def _within(seconds: float, read: Coroutine[Any, Any, bytes]) -> bytes:
    """A body read that gives up when the client sends nothing for `seconds` (a slow or
    stalled client must not hold an upload slot forever)."""
    try:
        # (`asyncio.timeout`, not `wait_for`: no task per read, and a large body has thousands)
        async with asyncio.timeout(seconds):
            return await read
    except TimeoutError:
        raise RequestTimeout(f"no body bytes for {seconds:g}s; upload abandoned") from None


def _values_path(ticket: WriteTicket) -> str:
    return f"/internal/values{quote(ticket.key)}?v={ticket.version}"


def _peer_path(action: str, meta: ValueMeta) -> str:
    return f"/internal/{action}{quote(meta.key)}?v={meta.version}"


class BodyStream(Protocol):
    """An incoming body: aiohttp's request stream, or `BodyBytes`."""

    async def read(self, n: int = -1) -> bytes: ...

    async def readany(self) -> bytes: ...


class BodyBytes:
    """A body that is already all in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def take(self) -> bytes:
        data, self._data = self._data, b""
        return data

    async def read(self, n: int = -1) -> bytes:
        return self.take()

    async def readany(self) -> bytes:
        return self.take()


@dataclass(frozen=True, slots=True)
class Upload:
    """What the HTTP layer hands over about an incoming body."""

    content_type: str | None
    length: int | None
    stream: BodyStream


def _meta(
    ticket: WriteTicket,
    content_type: str | None,
    size: int,
    checksum: bytes,
    modified: float,
    expires: float | None,
) -> ValueMeta:
    return ValueMeta(
        key=ticket.key,
        version=ticket.version,
        size=size,
        checksum=checksum,
        content_type=stored_content_type(content_type),
        created=ticket.created or modified,
        modified=modified,
        expires=expires,
    )


#: Seconds the master has to answer a batch of commits sent over the channel.
COMMIT_TIMEOUT = 60.0
#: Seconds a replica has to queue a batch of finalizes sent over its channel.
FINALIZE_TIMEOUT = 30.0


def _finalize_failed(url: str, value: tuple[str, int], exc: BaseException) -> None:
    """A finalize that did not reach its replica: the copy there stays pending, and is
    settled with the master later."""
    if isinstance(exc, (PulzarError, ChannelError, aiohttp.ClientError, TimeoutError, OSError)):
        log.info("finalize of %s on %s not done now: %s", value[0], url, exc)
    else:
        log.error("finalize of %s on %s failed: %r", value[0], url, exc)


class VolumeService:
    def __init__(self, config: Config, store: ValueStore, secret: str, node_id: str) -> None:
        self.config = config
        self.store = store
        self.secret = secret
        self.node_id = node_id
        self.url = config.volume_url
        self.master = config.volume.master.rstrip("/")
        self.max_value = config.general.maxsize * 1024 * 1024
        self.registered = False
        #: False while the master's index is not the one this volume's data belongs to.
        self.reconcile_allowed = False
        self.cluster_id: str | None = None
        self._warned_foreign = False
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[tuple[str, int]] = set()
        self._uploads = 0
        self._background: set[asyncio.Future[None]] = set()
        # Commits to the master and finalizes to each replica go out batched under load.
        self._commits: Coalescer[dict[str, Any], dict[str, Any]] = Coalescer(self._send_commits)
        self._finalizes: dict[str, Coalescer[tuple[str, int], None]] = {}
        self._small_replicas: dict[str, Coalescer[ReplicaEntry, bool]] = {}
        #: The channel to the master while it is up (`pulzar.jobs.channel`; opened with the
        #: job runner): commits go over it, else over HTTP.
        self.master_channel: Channel | None = None
        self.peers = PeerLinks(self.client, secret, config.timers.reconnect)
        #: More fields for the heartbeat (the job runner's counts).
        self.extra_stats: list[Callable[[], dict[str, Any]]] = []

    def client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = tls.session(
                self.config.security,
                aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60),
            )
        return self._session

    async def close(self) -> None:
        await self.peers.close()
        if self._session is not None:
            await self._session.close()

    # -- receiving ------------------------------------------------------------------------

    def ticket_for(self, token: str | None, key: str, now: float) -> WriteTicket:
        """The write ticket `token`, checked (`verify_ticket`) and for `key` on this volume."""
        ticket = verify_ticket(self.secret, token, now)
        if ticket.key != key:
            raise Forbidden("write ticket is for another key")
        if self.node_id not in ticket.nodes:
            raise Forbidden("write ticket is for other volumes")
        return ticket

    async def receive(
        self, ticket: WriteTicket, upload: Upload, *, modified: float, expires: float | None
    ) -> ValueMeta:
        """Steps 1 and 2: take the body and store it durably as pending (at most
        `[server] max_uploads` at once: more are refused with 503, to be retried)."""
        with self._upload_slot():
            meta, data, blob = await self._take(ticket, upload, modified=modified, expires=expires)
            await self.store.put(meta, data, blob, now=modified)
            return meta

    @contextlib.contextmanager
    def _upload_slot(self) -> Iterator[None]:
        if self._uploads >= self.config.server.max_uploads:
            raise Unavailable("too many uploads in progress on this volume; retry shortly")
        self._uploads += 1
        try:
            yield
        finally:
            self._uploads -= 1

    async def _take(
        self,
        ticket: WriteTicket,
        upload: Upload,
        *,
        modified: float,
        expires: float | None,
        feed: UploadFeed | None = None,
    ) -> tuple[ValueMeta, bytes | None, BlobWriter | None]:
        """Step 1: the body (in memory, or in a finished temp file) and its metadata; `feed`
        follows the temp file as it is written."""
        if upload.length is not None:
            self._check_size(upload.length)
            self.store.ensure_room(upload.length)
        data, blob = await self._read_body(upload, feed)
        try:
            size = len(data) if data is not None else blob.size  # type: ignore[union-attr]
            checksum = hashlib.sha256(data).digest() if data is not None else blob.checksum  # type: ignore[union-attr]
            if upload.length is not None and size != upload.length:
                raise BadRequest(f"body has {size} bytes, Content-Length said {upload.length}")
            meta = _meta(ticket, upload.content_type, size, checksum, modified, expires)
            if blob is not None:
                await asyncio.to_thread(blob.finish)
        except BaseException:
            if blob is not None:
                blob.abort()
            raise
        return meta, data, blob

    async def receive_replicas(self, entries: list[ReplicaEntry], now: float) -> list[bool]:
        """Steps 1 and 2 for small replicas that came in a batch (already in memory): each is
        checked on its own, and those that pass are stored together. Which were stored, in
        order; a store failure fails them all."""
        stored = [False] * len(entries)
        accepted: list[tuple[ValueMeta, bytes, float]] = []
        for i, entry in enumerate(entries):
            try:
                ticket = self.ticket_for(entry.ticket, entry.key, now)
                self._check_size(len(entry.data))
                self.store.ensure_room(len(entry.data))
            except PulzarError as exc:
                log.info("replica of %s refused: %s", entry.key, exc.message)
                continue
            checksum = hashlib.sha256(entry.data).digest()
            meta = _meta(
                ticket, entry.content_type, len(entry.data), checksum, entry.modified, entry.expires
            )
            accepted.append((meta, entry.data, entry.modified))
            stored[i] = True
        await self.store.put_many(accepted)
        return stored

    def _check_size(self, size: int) -> None:
        if size > self.max_value:
            raise PayloadTooLarge(f"value is over the limit of {self.config.general.maxsize} MiB")

    async def _read_body(
        self, upload: Upload, feed: UploadFeed | None = None
    ) -> tuple[bytes | None, BlobWriter | None]:
        """Small bodies stay in memory; larger ones go to a temp file with bounded memory."""
        inline_max = self.config.volume.inline_max
        stall = self.config.server.body_timeout
        if upload.length is not None and upload.length <= inline_max:
            if isinstance(upload.stream, BodyBytes):
                return upload.stream.take(), None
            return await _within(stall, upload.stream.read()), None
        # The body so far (before the temp file), then the batch to write next: its chunks
        # as they came, written with one system call and not joined first; the first `fed`
        # of them are in the feed already, the last `loose` are as they were read.
        chunks: list[bytes] = []
        pending = fed = loose = 0
        blob: BlobWriter | None = None
        # The batch being written (and hashed) in a thread while the next one is read.
        writing: asyncio.Future[None] | None = None
        total = written = 0
        loop = asyncio.get_running_loop()
        fed_at, feed_every = loop.time(), min(_FEED_EVERY, stall / 4)
        try:
            while chunk := await _within(stall, upload.stream.readany()):
                total += len(chunk)
                self._check_size(total)
                chunks.append(chunk)
                pending += len(chunk)
                loose += 1
                if loose >= _MAX_PARTS:
                    # Many small reads (a client sending small pieces): one part of them, so
                    # that the parts stay few, for `writev` and in the feed's window.
                    chunks[-loose:] = [b"".join(chunks[-loose:])]
                    loose = 0
                if blob is None and pending > inline_max:
                    blob = self.store.new_blob()
                if blob is not None and pending >= _WRITE_BATCH:
                    if writing is not None:
                        await writing
                    self.store.ensure_room(total, written=written)
                    if feed is not None:
                        feed.put(chunks[fed:])
                    writing = asyncio.ensure_future(asyncio.to_thread(blob.write, *chunks))
                    written += pending
                    chunks, pending, fed, loose, fed_at = [], 0, 0, 0, loop.time()
                    if feed is not None:
                        await feed.room()
                elif feed is not None and loop.time() - fed_at >= feed_every:
                    # A slow client: the replicas get what came so far, not only whole batches
                    # (they would wait past their own body timeout for a batch).
                    feed.put(chunks[fed:])
                    fed, loose, fed_at = len(chunks), 0, loop.time()
            if writing is not None:
                await writing
            # A body of unknown length is checked as it comes, and in full at its end.
            self.store.ensure_room(total, written=written)
            if blob is None:
                return b"".join(chunks), None
            if chunks:
                if feed is not None:
                    feed.put(chunks[fed:])
                await asyncio.to_thread(blob.write, *chunks)
            if feed is not None:
                feed.finish()
            return None, blob
        except BaseException as exc:
            if feed is not None:
                feed.fail()
            if blob is not None:
                if writing is not None:
                    # The thread may still be writing to the file: let it end before closing.
                    await asyncio.wait([writing])
                blob.abort()
            if isinstance(exc, OSError):
                raise storage_error(exc) from exc
            raise

    # -- the write path -------------------------------------------------------------------

    async def write(self, ticket: WriteTicket, upload: Upload, ttl: float | None) -> bool:
        """Steps 1 to 5. Returns False when a newer version was committed first (the write
        took place and was overwritten at once); raises on failure, leaving nothing visible."""
        now = ticket.modified or time.time()
        pair = (ticket.key, ticket.version)
        self._in_flight.add(pair)
        try:
            expires = ticket.expires or (None if ttl is None else now + ttl)
            with self._upload_slot():
                feed, streams = self._copy_while_receiving(ticket, upload, now, expires)
                try:
                    try:
                        meta, data, blob = await self._take(
                            ticket, upload, modified=now, expires=expires, feed=feed
                        )
                        if data is None:
                            await self.store.put(meta, None, blob, now=now)
                    except BaseException:
                        if streams:
                            # A replica may have stored the whole body already.
                            self._tell_peers(ticket, "DELETE", _values_path(ticket))
                        raise
                    try:
                        held = await self._store_and_copy(ticket, meta, data, now, streams)
                    except BaseException:
                        await self._drop_everywhere(ticket, meta)
                        raise
                finally:
                    if feed is not None:
                        # The streamed copies are over by now, or they are cut short.
                        feed.fail()
                        for stream in streams:
                            stream.cancel()
                        await asyncio.wait(streams)
            try:
                applied = await self._commit(meta, held, ticket.copies, ticket.condition)
            except Unavailable:
                # The master may have committed before the answer was lost: keep the copies
                # pending. Settling with the master later keeps them or drops them.
                raise
            except BaseException:
                await self._drop_everywhere(ticket, meta)
                raise
        finally:
            self._in_flight.discard(pair)
        if applied:
            self.store.finalize_later(meta.key, meta.version)
            self._finalize_on_peers(ticket, held, meta)
        else:
            await self._drop_everywhere(ticket, meta)
        return applied

    def _copy_while_receiving(
        self, ticket: WriteTicket, upload: Upload, now: float, expires: float | None
    ) -> tuple[UploadFeed | None, list[asyncio.Task[bool]]]:
        """A large body of known length is sent to the first R-1 replicas while it arrives
        (step 3 during step 1, see `UploadFeed`); they store it as pending, like any copy."""
        if upload.length is None or upload.length <= self.config.volume.inline_max:
            return None, []
        targets = ticket.urls[1 : ticket.copies]
        if not targets:
            return None, []
        self._check_size(upload.length)
        self.store.ensure_room(upload.length)
        feed = UploadFeed(patience=self.config.timers.replica_timeout)
        streams = []
        for url in targets:
            reader = feed.reader()
            stream = asyncio.ensure_future(
                self._stream_replica(url, ticket, reader, upload, modified=now, expires=expires)
            )
            # A replica that takes nothing for a while holds the upload no longer.
            reader.on_stuck = stream.cancel
            streams.append(stream)
        return feed, streams

    async def _stream_replica(
        self,
        url: str,
        ticket: WriteTicket,
        reader: FeedReader,
        upload: Upload,
        *,
        modified: float,
        expires: float | None,
    ) -> bool:
        path = self._replica_path(ticket.key, ticket, modified, expires)
        headers = signed_headers(self.secret, "PUT", path)
        headers["Content-Type"] = stored_content_type(upload.content_type)
        headers["Content-Length"] = str(upload.length)
        try:
            async with self.client().put(
                url + path, data=reader.chunks(), headers=headers, timeout=self._replica_timeout()
            ) as resp:
                return resp.status == 200
        finally:
            reader.close()

    async def _store_and_copy(
        self,
        ticket: WriteTicket,
        meta: ValueMeta,
        data: bytes | None,
        now: float,
        streams: list[asyncio.Task[bool]] | None = None,
    ) -> tuple[str, ...]:
        """Steps 2 and 3. A large value (`data` None) is stored here already and is sent from
        its file; a small one is stored here and sent to the replicas at the same time, so
        that the write waits for one fsync instead of two in a row. A crash between the steps
        leaves pending copies here or there either way, settled as in step 2."""
        if data is None:
            return await self._replicate(ticket, meta, streams=streams)
        stored = self.store.put_soon(meta, data, now)
        try:
            held = await self._replicate(ticket, meta, data)
        except BaseException:
            # The local copy is being written all the same: let it end (the caller drops
            # it), and a failure to store it here is the error that counts.
            await asyncio.wait([stored])
            if not stored.cancelled() and (error := stored.exception()) is not None:
                raise error from None
            raise
        await stored
        return held

    async def _drop_everywhere(self, ticket: WriteTicket, meta: ValueMeta) -> None:
        await self.store.discard(meta.key, meta.version)
        self._tell_peers(ticket, "DELETE", _peer_path("values", meta))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _tell_peers(self, ticket: WriteTicket, method: str, path: str) -> None:
        """Finalize or drop the copies on the other replicas, in the background. A copy that
        misses the message stays pending and is settled with the master later."""
        for url in ticket.urls[1:]:
            self.spawn(self._call_peer(method, url, path))

    def _finalize_on_peers(
        self, ticket: WriteTicket, held: tuple[str, ...], meta: ValueMeta
    ) -> None:
        """Step 5 on the replicas that hold a copy, in the background, batched per replica."""
        urls = dict(zip(ticket.nodes, ticket.urls, strict=True))
        for node_id in held[1:]:
            url = urls[node_id]
            batcher = self._finalizes.get(url)
            if batcher is None:
                batcher = self._finalizes[url] = Coalescer(
                    partial(self._send_finalizes, url), on_error=partial(_finalize_failed, url)
                )
            batcher.post((meta.key, meta.version))

    async def _send_finalizes(
        self, url: str, values: list[tuple[str, int]]
    ) -> list[BaseException | None]:
        link = self.peers.get(url)
        if link is not None:
            await link.request("finalize", {"values": values}, FINALIZE_TIMEOUT)
            return [None] * len(values)
        path = "/internal/finalize_many"
        headers = signed_headers(self.secret, "POST", path)
        headers["Content-Type"] = "application/json"
        body = orjson.dumps({"values": values})
        async with self.client().post(url + path, data=body, headers=headers) as resp:
            payload = await resp.read()
            if resp.status != 200:
                raise error_for_status(resp.status, payload.decode(errors="replace")[:200])
        return [None] * len(values)

    async def _call_peer(self, method: str, url: str, path: str) -> None:
        try:
            headers = signed_headers(self.secret, method, path)
            async with self.client().request(method, url + path, headers=headers) as resp:
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("%s %s on %s not done now: %s", method, path, url, exc)

    async def _replicate(
        self,
        ticket: WriteTicket,
        meta: ValueMeta,
        data: bytes | None = None,
        streams: list[asyncio.Task[bool]] | None = None,
    ) -> tuple[str, ...]:
        """Copy the value (`data`, else this node's stored copy) to R-1 other candidates in
        parallel; a candidate that fails is replaced by the next spare. `streams` are copies
        already on their way to the first candidates. Returns the nodes holding it, primary
        first; raises `Unavailable` when fewer than W copies are durable."""
        spares = list(zip(ticket.nodes[1:], ticket.urls[1:], strict=True))
        held = [self.node_id]

        async def place_one(streamed: asyncio.Task[bool] | None) -> None:
            if streamed is not None:
                node_id, url = spares.pop(0)
                await asyncio.wait([streamed])
                if streamed.cancelled():
                    log.info("copy of %s to %s given up: the replica took nothing", meta.key, url)
                else:
                    try:
                        if streamed.result():
                            held.append(node_id)
                            return
                    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                        log.info("copy of %s to %s failed: %s", meta.key, url, exc)
            while spares:
                node_id, url = spares.pop(0)
                try:
                    if await self._send_replica(url, ticket, meta, data):
                        held.append(node_id)
                        return
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    log.info("copy of %s to %s failed: %s", meta.key, url, exc)

        first: list[asyncio.Task[bool] | None] = []
        first += (streams or [])[: ticket.copies - 1]
        first += [None] * (ticket.copies - 1 - len(first))
        if len(first) == 1:
            await place_one(first[0])
        else:
            await asyncio.gather(*(place_one(streamed) for streamed in first))
        if len(held) < ticket.quorum:
            raise Unavailable(
                f"only {len(held)} of the {ticket.quorum} copies needed could be stored"
            )
        return tuple(held)

    def _replica_path(
        self, key: str, ticket: WriteTicket, modified: float, expires: float | None
    ) -> str:
        return (
            f"/internal/replica{quote(key)}?t={ticket.signed(self.secret)}"
            f"&modified={modified!r}&expires={expires or ''}"
        )

    def _replica_timeout(self) -> aiohttp.ClientTimeout:
        """A copy gives up when it cannot get a connection (a free one of the pool included),
        or gets no answer, within `[timers] replica_timeout`."""
        wait = self.config.timers.replica_timeout
        return aiohttp.ClientTimeout(total=None, connect=wait, sock_connect=5, sock_read=wait)

    async def _send_replica(
        self, url: str, ticket: WriteTicket, meta: ValueMeta, data: bytes | None = None
    ) -> bool:
        if data is not None and len(data) <= self.config.volume.inline_max:
            # Small values to one replica travel together (see `Coalescer`).
            batcher = self._small_replicas.get(url)
            if batcher is None:
                send = partial(self._send_small_replicas, url)
                batcher = self._small_replicas[url] = Coalescer(
                    send, max_batch=replicas_per_batch(self.config.volume.inline_max)
                )
            entry = ReplicaEntry(
                meta.key,
                ticket.signed(self.secret),
                meta.modified,
                meta.expires,
                meta.content_type,
                data,
            )
            return await batcher.call(entry)
        path = self._replica_path(meta.key, ticket, meta.modified, meta.expires)
        stored = None if data is not None else self.store.get(meta.key, meta.version)
        if data is None and stored is None:
            return False
        headers = signed_headers(self.secret, "PUT", path)
        headers["Content-Type"] = meta.content_type
        if data is not None:
            body: Any = data
        elif stored is not None and stored.data is not None:
            body = stored.data
        else:
            assert stored is not None and stored.path is not None
            body = open(stored.path, "rb")  # noqa: SIM115 - aiohttp closes it after sending
        async with self.client().put(
            url + path, data=body, headers=headers, timeout=self._replica_timeout()
        ) as resp:
            return resp.status == 200

    async def _send_small_replicas(
        self, url: str, entries: list[ReplicaEntry]
    ) -> list[bool | BaseException]:
        """Over the channel to the replica when it is up (see `pulzar.volume.peers`), else in
        one HTTP request. A failure of either raises (each replica then goes to a spare)."""
        body = pack_replicas(entries)
        link = self.peers.get(url)
        if link is not None:
            timeout = self.config.timers.replica_timeout
            try:
                answer = await link.request("replicas", {}, timeout, payload=body)
            except ChannelError as exc:
                log.warning("replicas refused by %s: %s", url, exc)
                return [False] * len(entries)
            return [bool(stored) for stored in answer["stored"]]
        path = "/internal/replicas"
        headers = signed_headers(self.secret, "POST", path)
        headers["Content-Type"] = "application/octet-stream"
        async with self.client().post(
            url + path, data=body, headers=headers, timeout=self._replica_timeout()
        ) as resp:
            if resp.status != 200:
                return [False] * len(entries)
            results = orjson.loads(await resp.read())["data"]["stored"]
        return [bool(stored) for stored in results]

    async def _commit(
        self, meta: ValueMeta, nodes: tuple[str, ...], copies: int, condition: str
    ) -> bool:
        body = {
            **meta.to_json(),
            "nodes": list(nodes),
            "copies": copies,
            "condition": condition,
        }
        answer = await self._commits.call(body)
        return bool(answer["applied"])

    async def _send_commits(
        self, bodies: list[dict[str, Any]]
    ) -> list[dict[str, Any] | BaseException]:
        """One request to the master for the commits that gathered while the last one was on
        its way (see `Coalescer`); each gets its own answer or error."""
        link = self.master_channel
        if link is not None and not link.closed:
            try:
                answer = await link.request("commits", {"commits": bodies}, COMMIT_TIMEOUT)
            except (ChannelClosed, TimeoutError) as exc:
                # Maybe committed, maybe not: like an HTTP call that got no answer.
                raise Unavailable(f"master unreachable: {exc}") from exc
            except ChannelError as exc:
                raise error_for_status(500, str(exc)) from exc
        else:
            answer = await self.call_master("POST", "/internal/commits", {"commits": bodies})
        results: list[dict[str, Any] | BaseException] = []
        for result in answer["results"]:
            if "applied" in result:
                results.append(result)
            else:
                results.append(error_for_status(int(result["status"]), str(result["msg"])))
        return results

    async def call_master(self, method: str, path: str, body: Any) -> Any:
        """A signed call to the master; its error envelope comes back as our exception."""
        headers = signed_headers(self.secret, method, path)
        headers["Content-Type"] = "application/json"
        try:
            async with self.client().request(
                method, self.master + path, data=orjson.dumps(body), headers=headers
            ) as resp:
                payload = orjson.loads(await resp.read())
                if resp.status != 200:
                    raise error_for_status(resp.status, str(payload.get("msg", "")))
                return payload["data"]
        except PulzarError:
            raise
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, OSError) as exc:
            raise Unavailable(f"master unreachable: {exc}") from exc

    # -- reconciling with the master ------------------------------------------------------

    def join_cluster(self, cluster_id: str) -> bool:
        """Remember the master's index identity; False when it is not the one this volume's
        data belongs to (a new or wiped index): then nothing here is dropped to match it
        until `pulzar restore` has rebuilt the index from the volumes."""
        path = self.store.root / "cluster_id"
        if self.cluster_id is None:
            self.cluster_id = path.read_text().strip() if path.exists() else ""
        if not self.cluster_id or (self.cluster_id != cluster_id and self.store.count() == 0):
            path.write_text(cluster_id + "\n")
            self.cluster_id = cluster_id
        self.reconcile_allowed = self.cluster_id == cluster_id
        if self.reconcile_allowed:
            self._warned_foreign = False
        elif not self._warned_foreign:
            self._warned_foreign = True
            log.error(
                "the master's index (%s) is not the one this volume's data belongs to (%s): "
                "keeping every value; rebuild the index with `pulzar restore`",
                cluster_id,
                self.cluster_id,
            )
        return self.reconcile_allowed

    async def _keep(self, pairs: list[tuple[str, int]]) -> list[bool]:
        """For each (key, version): does the master list this node as holding it, current?"""
        keep: list[bool] = []
        for start in range(0, len(pairs), 500):
            batch = pairs[start : start + 500]
            answer = await self.call_master(
                "POST",
                "/internal/lookup",
                {"node": self.node_id, "values": [list(kv) for kv in batch]},
            )
            keep.extend(bool(k) for k in answer["keep"])
        return keep

    async def settle_pending(self, older_than: float) -> int:
        """Finalize pending values that the master lists here as current (a finalize that
        never came); drop the others stored before `older_than` (younger ones may still be
        waiting for their commit). Returns how many were settled."""
        if not self.reconcile_allowed:
            return 0
        old = set(self.store.pending(older_than))
        pending = [kv for kv in self.store.pending(time.time()) if kv not in self._in_flight]
        settled = 0
        for (key, version), keep in zip(pending, await self._keep(pending), strict=True):
            if keep:
                await self.store.finalize(key, version)
            elif (key, version) in old:
                await self.store.discard(key, version)
            else:
                continue
            settled += 1
        return settled

    async def reconcile(self, now: float) -> int:
        """After (re)joining: drop every value the master does not list here as current
        (deleted or overwritten while this node was away, or re-copied elsewhere), finalize
        the pending ones it lists here (their finalize was missed: this node or the writing
        one died), and settle old pending ones. Returns the number of values dropped."""
        if not self.reconcile_allowed:
            return 0
        young = now - self.config.security.ticket_ttl
        dropped = 0
        after: bytes | None = None
        while True:
            values, after = self.store.scan(after, 500)
            pairs = [
                (v.meta.key, v.meta.version)
                for v in values
                if (v.meta.key, v.meta.version) not in self._in_flight
            ]
            # A young pending value the master does not list may still be waiting for its
            # commit: it is left to `settle_pending`, not dropped.
            waiting = {
                (v.meta.key, v.meta.version)
                for v in values
                if v.meta.modified > young and self.store.is_pending(v.meta.key, v.meta.version)
            }
            for (key, version), keep in zip(pairs, await self._keep(pairs), strict=True):
                if keep:
                    if self.store.is_pending(key, version):
                        await self.store.finalize(key, version)
                elif (key, version) not in waiting:
                    await self.store.discard(key, version)
                    dropped += 1
            if after is None:
                return dropped

    # -- scrubbing ------------------------------------------------------------------------

    async def scrub(self, after: bytes | None) -> tuple[int, bytes | None]:
        """Re-verify one batch of values; a corrupt copy is dropped and reported, so the
        master's repair copies a good one back. Returns (corrupt found, next position)."""
        values, position = self.store.scan(after, self.config.repair.scrub_batch)
        rate = self.config.repair.scrub_bandwidth * 1024 * 1024
        corrupt = 0
        for stored in values:
            if not await asyncio.to_thread(stored.verify_fully):
                corrupt += 1
                await self.report_corrupt(stored.meta)
            if rate and stored.path is not None:
                await asyncio.sleep(stored.meta.size / rate)
        return corrupt, position

    async def verify(self, stored: StoredValue) -> bool:
        """Check a copy before it is served: inline values always, files up to
        `[volume] verify_max` bytes (in a thread)."""
        if stored.path is None:
            return stored.verify()
        if stored.meta.size > self.config.volume.verify_max:
            return True
        return await asyncio.to_thread(stored.verify_fully)

    async def report_corrupt(self, meta: ValueMeta) -> None:
        """Drop a copy that fails its checksum and tell the master, which re-copies a good one."""
        log.error("checksum mismatch: %s version %d; dropping this copy", meta.key, meta.version)
        await self.store.discard(meta.key, meta.version)
        try:
            await self.call_master(
                "POST",
                "/internal/lost",
                {"node": self.node_id, "key": meta.key, "version": meta.version},
            )
        except Unavailable as exc:
            log.warning("could not report the corrupt copy of %s: %s", meta.key, exc)

    # -- copies for repair ----------------------------------------------------------------

    async def push_copy(self, ticket: WriteTicket) -> bool:
        """Send this node's copy of the ticket's version to the ticket's (single) target."""
        stored = self.store.get(ticket.key, ticket.version)
        if stored is None:
            return False
        return await self._send_replica(ticket.urls[0], ticket, stored.meta)

    # -- reporting ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        used, capacity = self.store.disk_usage()
        stats = {
            "node_id": self.node_id,
            "name": self.config.volume.name
            or f"{self.config.volume.host}:{self.config.volume.port}",
            "url": self.url,
            "percent": 100.0 * used / capacity if capacity else 100.0,
            "load": os.getloadavg()[0],
            "used_bytes": self.store.used_bytes,
            "free_bytes": self.store.free_bytes(),
            "capacity": capacity,
            "keys": self.store.count(),
        }
        for extra in self.extra_stats:
            stats.update(extra())
        return stats
