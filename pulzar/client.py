"""The Python client of Pulzar.

    from pulzar.client import Client
    c = Client("http://127.0.0.1:31414")
    c.put("/configs/app.toml", b"debug = true\n")
    c.get("/configs/app.toml")           # b"debug = true\n"
    for entry in c.list("/configs/"):    # every page, lazily
        print(entry["key"], entry["size"])

Errors are the exceptions of `pulzar.core.errors` (`KeyNotFound`, `Conflict`, ...), mapped from
the HTTP status in one place (`_raise_for`).

Reads remember which volume served a key for `location_ttl` seconds and go straight to it
next time (one request instead of two); a write or delete through this client forgets the
key's location, so a client always reads its own writes. Requests that never reached the
server, and answers 503 (nothing was stored), are retried a few times with a short backoff when
the body can be sent again.
"""

from __future__ import annotations

import builtins
import contextlib
import ssl
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from pulzar.core.config import DEFAULT_MASTER_URL
from pulzar.core.errors import PulzarError, Unavailable, error_for_status
from pulzar.core.keys import validate_key

Body = bytes | str | IO[bytes] | Iterable[bytes]


def _path(key: str) -> str:
    return quote(validate_key(key), safe="/")


class Client:
    """A synchronous client. `master` is the master's URL; `token` a bearer token if required."""

    def __init__(
        self,
        master: str = DEFAULT_MASTER_URL,
        token: str | None = None,
        timeout: float = 60.0,
        verify: bool | str = True,
        retries: int = 3,
        location_ttl: float = 5.0,
    ) -> None:
        """`token`: the bearer token when the cluster requires one (`[security] token`, or
        the admin token to launch jobs); `verify`: check TLS certificates (a CA bundle path,
        or False for none); `retries`: attempts after a connection failure or a 503;
        `location_ttl`: seconds a key's volume is remembered for direct reads (0: never)."""
        self.master = master.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        tls: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self._http = httpx.Client(
            timeout=timeout, headers=headers, follow_redirects=False, verify=tls
        )
        self.retries = retries
        self.location_ttl = location_ttl
        self._locations: dict[str, tuple[str, float]] = {}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, retried after a connection failure or a 503 when its body (if any)
        can be sent again."""
        body = kwargs.get("content")
        replayable = body is None or isinstance(body, bytes | str)
        attempts = 1 + (self.retries if replayable else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.ConnectError as exc:
                if last:
                    raise Unavailable(
                        f"cannot reach {urlsplit(url).netloc}: {exc} "
                        "(is the cluster running? start one with `pulzar up`)"
                    ) from exc
            except httpx.TransportError as exc:
                raise Unavailable(f"{method} {urlsplit(url).netloc} failed: {exc}") from exc
            else:
                if response.status_code != 503 or last:
                    return response
            time.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _raise_for(response: httpx.Response, key_request: bool = False) -> None:
        if response.status_code < 400:
            return
        try:
            message = str(response.json().get("msg") or response.reason_phrase)
        except (ValueError, AttributeError):
            message = response.reason_phrase or f"HTTP {response.status_code}"
        raise error_for_status(response.status_code, message, key_request=key_request)

    def _json(self, method: str, path: str, key_request: bool = False, **kwargs: Any) -> Any:
        response = self._send(method, self.master + path, **kwargs)
        self._raise_for(response, key_request)
        try:
            return response.json()["data"]
        except (ValueError, KeyError) as exc:
            raise PulzarError(f"unexpected answer from {path}: {response.text[:200]}") from exc

    def _location(self, key: str, skip: builtins.list[str] | None = None) -> str:
        params = {"skip": ",".join(skip)} if skip else None
        response = self._send("GET", f"{self.master}/get_key{_path(key)}", params=params)
        self._raise_for(response, key_request=True)
        if response.status_code != 307:
            raise PulzarError(f"expected a redirect for {key}, got {response.status_code}")
        return response.headers["Location"]

    # -- keys -----------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: Body,
        *,
        ttl_days: float | None = None,
        content_type: str = "application/octet-stream",
        create_only: bool = False,
        if_match: str | int | None = None,
        size: int | None = None,
    ) -> dict[str, Any]:
        """Store `data` (bytes, str, a binary file or an iterator of bytes) under `key`.

        Returns the 201's data (`url`, `version`). `create_only` raises `Conflict` when the
        key exists; `if_match` (an ETag or a version) raises `PreconditionFailed` on mismatch.
        """
        params: dict[str, Any] = {}
        if ttl_days is not None:
            params["temporal"] = ttl_days
        if size is not None:
            params["size"] = size
        elif isinstance(data, bytes | str):
            params["size"] = len(data.encode() if isinstance(data, str) else data)
        headers = {"Content-Type": content_type}
        if create_only:
            headers["If-None-Match"] = "*"
        if if_match is not None:
            headers["If-Match"] = str(if_match)
        self._locations.pop(key, None)
        node = self._json("GET", f"/get_node{_path(key)}", params=params, headers=headers)
        content = data.encode() if isinstance(data, str) else data
        response = self._send("PUT", node["node"], content=content, headers=headers)
        self._raise_for(response)
        return dict(response.json()["data"])

    def get(self, key: str) -> bytes:
        """The bytes of `key`; raises `KeyNotFound` when it does not exist.

        A replica that cannot be reached is skipped: the master is asked for another one."""
        cached = self._cached_volume(key)
        if cached is not None:
            try:
                response = self._http.request("GET", f"{cached}/get_key{_path(key)}")
                if response.status_code == 200:
                    return response.content
            except httpx.TransportError:
                pass
            self._locations.pop(key, None)
        skip: builtins.list[str] = []
        while True:
            url = self._location(key, skip)
            try:
                response = self._http.request("GET", url, follow_redirects=True)
            except httpx.TransportError as exc:
                node = parse_qs(urlsplit(url).query).get("n", [""])[0]
                if not node or node in skip or len(skip) >= 8:
                    raise Unavailable(f"cannot read {key}: {exc}") from exc
                skip.append(node)
                continue
            self._raise_for(response, key_request=True)
            if response.url.path.startswith("/get_key") and self.location_ttl:
                served = f"{response.url.scheme}://{response.url.netloc.decode()}"
                self._locations[key] = (served, time.monotonic() + self.location_ttl)
            return response.content

    def _cached_volume(self, key: str) -> str | None:
        entry = self._locations.get(key)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[httpx.Response]:
        """`with client.open(key) as response:` the volume's streaming answer, headers
        included (`ETag`, `Content-Type`, `X-Pulzar-Version`); read it with `iter_bytes()`."""
        url = self._location(key)
        try:
            with self._http.stream("GET", url, follow_redirects=True) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise_for(response, key_request=True)
                yield response
        except httpx.TransportError as exc:
            raise Unavailable(f"transfer of {key} failed: {exc}") from exc

    @contextlib.contextmanager
    def get_stream(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[Iterator[bytes]]:
        """`with client.get_stream(key) as chunks:` iterate the value with bounded memory."""
        with self.open(key) as response:
            yield response.iter_bytes(chunk_size)

    def download(self, key: str, path: str | Path) -> int:
        """Write `key` to the file `path`; return the number of bytes."""
        total = 0
        with self.get_stream(key) as chunks, open(path, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                total += len(chunk)
        return total

    def delete(self, key: str) -> None:
        """Delete `key` (`KeyNotFound` when it does not exist)."""
        self._locations.pop(key, None)
        self._json("DELETE", f"/delete_key{_path(key)}", key_request=True)

    def stat(self, key: str) -> dict[str, Any]:
        """Metadata of `key`: version, size, etag, content type, times, replicas."""
        return dict(self._json("GET", f"/stat_key{_path(key)}", key_request=True))

    def list(self, prefix: str = "", page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every live key starting with `prefix`, in key order, fetched a page at a time."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if after:
                params["after"] = after
            page = self._json("GET", f"/list_keys/{quote(prefix.lstrip('/'))}", params=params)
            yield from page["keys"]
            after = page["next"]
            if not after:
                return

    # -- jobs -----------------------------------------------------------------------------

    def launch_job(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        *,
        schedule: dict[str, Any] | None = None,
        data_key: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
    ) -> int:
        """Launch job `group/name` with `params`; returns the run's id (a schedule's id when
        `schedule` is given, e.g. `{"interval": "minutes", "time_unit": 5}` or
        `{"cron": "0 * * * *"}`). `data_key` runs it next to that key's value."""
        body: dict[str, Any] = dict(params or {})
        if schedule is not None:
            body["scheduled"] = schedule
        if data_key is not None:
            body["pulzar_data"] = data_key
        if retries:
            body["pulzar_retries"] = retries
        if timeout is not None:
            body["pulzar_timeout"] = timeout
        data = self._json("POST", f"/launch_job/{name.strip('/')}", json=body)
        return int(data["job_id"])

    def job(self, job_id: int) -> dict[str, Any]:
        """A run's record: status, node, times, result, error and log."""
        return dict(self._json("GET", f"/admin/jobs/{int(job_id)}"))

    def job_logs(self, job_id: int) -> str:
        return str(self.job(job_id).get("log") or "")

    def cancel_job(self, job_id: int) -> str:
        """Cancel a schedule, or stop a pending or running run; returns what was done."""
        response = self._send("POST", f"{self.master}/cancel_job/{int(job_id)}")
        self._raise_for(response)
        return str(response.json()["msg"])

    def jobs(self, limit: int = 100) -> dict[str, Any]:
        """The job board: pendings, running, ready, failed, cancelled, scheduled."""
        return dict(self._json("GET", "/admin/jobs", params={"limit": limit}))

    def deploy_jobs(self, directory: str | Path) -> builtins.list[str]:
        """Upload every `group/name.py` under `directory` to the master's job directory."""
        root = Path(directory)
        files = {
            str(p.relative_to(root)): p.read_text(encoding="utf-8")
            for p in sorted(root.glob("*/*.py"))
            if p.name != "__init__.py"
        }
        if not files:
            raise PulzarError(f"no job files (<group>/<name>.py) under {root}")
        data = self._json("POST", "/admin/jobs/deploy", json={"files": files})
        return builtins.list(data["deployed"])

    # -- cluster --------------------------------------------------------------------------

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call an /admin endpoint; returns its `data`."""
        return self._json(method, path, **kwargs)

    def put_restored(self, meta: dict[str, Any], data: Body) -> dict[str, Any]:
        """Store a value from a backup, keeping its version and times (`meta` as in a
        backup manifest)."""
        params = {k: meta[k] for k in ("version", "created", "modified", "size")}
        if meta.get("expires") is not None:
            params["expires"] = meta["expires"]
        node = self._json("GET", f"/admin/restore_node{_path(meta['key'])}", params=params)
        headers = {"Content-Type": meta.get("content_type") or "application/octet-stream"}
        response = self._send("PUT", node["node"], content=data, headers=headers)
        self._raise_for(response)
        return dict(response.json()["data"])

    def network(self) -> builtins.list[dict[str, Any]]:
        """Every volume with its state, disk use, load and key count."""
        return builtins.list(self._json("GET", "/admin/network"))

    def status(self) -> dict[str, Any]:
        """LMDB statistics of the master's key index."""
        return dict(self._json("GET", "/admin/status"))


def copy_stream(chunks: Iterable[bytes], out: IO[bytes]) -> int:
    total = 0
    for chunk in chunks:
        out.write(chunk)
        total += len(chunk)
    return total
