"""Backups of a cluster's keys and values, and loading them into an empty cluster.

A backup is a directory:
    backup.json      what it holds (format, time, key count, bytes); written last, so a
                     backup without it is incomplete
    manifest.jsonl   one line a key: key, version, size, sha256, content type, created,
                     modified, expires (epoch seconds), file
    values/ab/...    the bytes, one file a key
    jobs.jsonl       the job system's run records, one a line
    schedules.json   its schedules

It works through the public API, like any client: every key is listed, then fetched by its
current version and checked against its checksum while it is written. Each key in the backup is
a version that existed at or after the backup started (a key changed during the backup is saved
as it was when it was read). Loading checks every file against the manifest before writing
anything, so a damaged backup changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pulzar.client import Client
from pulzar.core.errors import KeyNotFound, PulzarError

FORMAT = 1
_FIELDS = ("key", "version", "size", "sha256", "file", "created", "modified")
Progress = Callable[[int, int], None]


class BackupError(PulzarError):
    status = 400
    default_message = "bad backup"


@dataclass(frozen=True, slots=True)
class Summary:
    keys: int
    bytes: int
    seconds: float


def _epoch(iso: str | None) -> float | None:
    if iso is None:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _value_file(key: str, version: int) -> str:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"values/{digest[:2]}/{digest}-{version}"


def backup(client: Client, dest: Path, progress: Progress | None = None) -> Summary:
    """Write a backup of every live key to the new or empty directory `dest`."""
    started = time.monotonic()
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: back up into a new directory")
    dest.mkdir(parents=True, exist_ok=True)
    entries = list(client.list(""))
    total_bytes = sum(int(e["size"]) for e in entries)
    done_bytes = keys = 0
    with open(dest / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        for entry in entries:
            try:
                line = _save_value(client, dest, entry)
            except KeyNotFound:
                continue  # deleted since it was listed
            manifest.write(json.dumps(line) + "\n")
            keys += 1
            done_bytes += line["size"]
            if progress:
                progress(done_bytes, total_bytes)
        manifest.flush()
        os.fsync(manifest.fileno())
    runs, schedules = _save_job_records(client, dest)
    summary = {
        "format": FORMAT,
        "created": time.time(),
        "keys": keys,
        "bytes": done_bytes,
        "jobs": runs,
        "schedules": schedules,
        "master": client.master,
    }
    (dest / "backup.json").write_text(json.dumps(summary, indent=2) + "\n")
    return Summary(keys, done_bytes, time.monotonic() - started)


def _save_job_records(client: Client, dest: Path) -> tuple[int, int]:
    runs = 0
    with open(dest / "jobs.jsonl", "w", encoding="utf-8") as out:
        after: int | None = None
        while True:
            params = {"limit": 1000, **({"after": after} if after else {})}
            page = client.admin("GET", "/admin/backup/jobs", params=params)
            for record in page["jobs"]:
                out.write(json.dumps(record) + "\n")
                runs += 1
            after = page["next"]
            if not after:
                break
    schedules = client.admin("GET", "/admin/backup/schedules")
    (dest / "schedules.json").write_text(json.dumps(schedules, indent=1) + "\n")
    return runs, len(schedules)


def _read_job_records(src: Path) -> tuple[list[Any], list[Any]]:
    jobs_file, schedules_file = src / "jobs.jsonl", src / "schedules.json"
    try:
        jobs = (
            [json.loads(line) for line in jobs_file.read_text().splitlines() if line]
            if jobs_file.exists()
            else []
        )
        schedules = json.loads(schedules_file.read_text()) if schedules_file.exists() else []
    except (OSError, ValueError) as exc:
        raise BackupError(f"job records of the backup are damaged: {exc}") from None
    if not isinstance(schedules, list) or not all(isinstance(j, dict) for j in jobs):
        raise BackupError("job records of the backup are damaged")
    return jobs, schedules


def _save_value(client: Client, dest: Path, entry: dict[str, Any]) -> dict[str, Any]:
    with client.open(entry["key"]) as response:
        version = int(response.headers.get("X-Pulzar-Version", entry["version"]))
        relative = _value_file(entry["key"], version)
        path = dest / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with open(path, "wb") as out:
            for chunk in response.iter_bytes(1024 * 1024):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        etag = response.headers.get("ETag", "").strip('"')
        content_type = response.headers.get("Content-Type", "application/octet-stream")
    if etag and etag != digest.hexdigest():
        raise BackupError(f"{entry['key']}: bytes received do not match their checksum")
    if version != int(entry["version"]):
        entry = client.stat(entry["key"])  # changed since listed: take its times now
    return {
        "key": entry["key"],
        "version": version,
        "size": size,
        "sha256": digest.hexdigest(),
        "content_type": content_type,
        "created": _epoch(entry["created"]),
        "modified": _epoch(entry["modified"]),
        "expires": _epoch(entry["expires"]),
        "file": relative,
    }


def read_manifest(src: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The backup's summary and entries; raises `BackupError` when it is not a complete,
    readable backup of a format this Pulzar knows."""
    try:
        summary = json.loads((src / "backup.json").read_text())
    except FileNotFoundError:
        raise BackupError(f"{src} is not a complete backup (no backup.json)") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{src}/backup.json is unreadable: {exc}") from None
    if not isinstance(summary, dict) or summary.get("format") != FORMAT:
        raise BackupError(f"{src} has an unknown backup format: {summary.get('format')!r}")
    entries = []
    try:
        with open(src / "manifest.jsonl", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    entry = json.loads(line)
                    complete = all(f in entry for f in _FIELDS)
                except (ValueError, TypeError):
                    complete = False
                if not complete:
                    raise BackupError(f"manifest.jsonl line {number} is damaged")
                entries.append(entry)
    except OSError as exc:
        raise BackupError(f"cannot read the manifest: {exc}") from None
    if len(entries) != summary.get("keys"):
        raise BackupError(
            f"manifest has {len(entries)} keys but backup.json says {summary.get('keys')}"
        )
    return summary, entries


def verify(src: Path, entries: list[dict[str, Any]], progress: Progress | None = None) -> None:
    """Check every value file against the manifest; raise `BackupError` at the first fault."""
    total = sum(int(e["size"]) for e in entries)
    done = 0
    for entry in entries:
        path = (src / entry["file"]).resolve()
        if not path.is_relative_to(src.resolve()):
            raise BackupError(f"manifest entry for {entry['key']} points outside the backup")
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for chunk in _chunks(fh):
                    digest.update(chunk)
        except OSError as exc:
            raise BackupError(f"value of {entry['key']} is missing: {exc}") from None
        if digest.hexdigest() != entry["sha256"]:
            raise BackupError(f"value of {entry['key']} is damaged (checksum mismatch)")
        done += int(entry["size"])
        if progress:
            progress(done, total)


def restore(
    client: Client, src: Path, *, force: bool = False, progress: Progress | None = None
) -> Summary:
    """Load the backup at `src` into the cluster, which must hold no keys (unless `force`).
    Keys keep their versions, creation and modification times and TTLs."""
    started = time.monotonic()
    _, entries = read_manifest(src)
    verify(src, entries)
    jobs, schedules = _read_job_records(src)
    if not force and next(iter(client.list("", page_size=1)), None) is not None:
        raise BackupError("the cluster already holds keys: restore into an empty cluster")
    done_bytes = 0
    total = sum(int(e["size"]) for e in entries)
    for entry in entries:
        with open(src / entry["file"], "rb") as fh:
            client.put_restored(entry, _chunks(fh))
        done_bytes += int(entry["size"])
        if progress:
            progress(done_bytes, total)
    if jobs or schedules:
        client.admin("POST", "/admin/backup/jobs", json={"jobs": jobs, "schedules": schedules})
    return Summary(len(entries), done_bytes, time.monotonic() - started)


def _chunks(fh: Any) -> Iterator[bytes]:
    while chunk := fh.read(1024 * 1024):
        yield chunk


def scheduled_backup(master_url: str, dest: Path, keep: int, token: str | None = None) -> Path:
    """One scheduled backup into a new `dest/pulzar-<time>` directory; keeps the newest
    `keep` backups there and removes older ones (only directories this function made)."""
    target = dest / time.strftime("pulzar-%Y%m%d-%H%M%S", time.gmtime())
    with Client(master_url, token) as client:
        backup(client, target)
    made = sorted(p for p in dest.glob("pulzar-*") if (p / "backup.json").exists())
    for old in made[:-keep]:
        shutil.rmtree(old)
    return target
