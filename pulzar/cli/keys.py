"""Client commands: put, get, rm, ls, stat."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import orjson

from pulzar.client import Client, copy_stream
from pulzar.core.config import DEFAULT_MASTER_URL
from pulzar.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PulzarError,
    Unauthorized,
    Unavailable,
)

F = TypeVar("F", bound=Callable[..., Any])

master_option = click.option(
    "--master",
    envvar="PULZAR_MASTER",
    default=DEFAULT_MASTER_URL,
    show_default=True,
    help="Master URL ($PULZAR_MASTER).",
)
token_option = click.option(
    "--token", envvar="PULZAR_TOKEN", default=None, help="Bearer token ($PULZAR_TOKEN)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


#: Exit codes of client commands (2 is click's usage error).
EXIT_CODES: list[tuple[type[PulzarError], int]] = [
    (NotFound, 3),
    (Conflict, 4),
    (PreconditionFailed, 4),
    (Unauthorized, 5),
    (Forbidden, 5),
    (Unavailable, 6),
    (PulzarError, 1),
]


def client_command(func: F) -> F:
    """Turn Pulzar errors into one line on stderr and an exit code: 3 not found, 4 conflict
    or failed condition, 5 credential missing or refused, 6 cluster unreachable or without
    a live volume, 1 anything else."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PulzarError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(next(code for kind, code in EXIT_CODES if isinstance(exc, kind)))

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _chunks(stream: IO[bytes], advance: Callable[[int], None] | None = None) -> Iterator[bytes]:
    while chunk := stream.read(1024 * 1024):
        if advance is not None:
            advance(len(chunk))
        yield chunk


#: Transfers from this size on show a progress bar (on a terminal).
PROGRESS_FROM = 4 * 1024 * 1024


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for a transfer of `total` bytes (none for small ones or when
    stderr is not a terminal); yields the function that advances it."""
    if total < PROGRESS_FROM or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@click.command()
@click.argument("key")
@click.argument("file", required=False, default="-")
@click.option(
    "--ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Days until the value expires.",
)
@click.option("--content-type", default="application/octet-stream", show_default=True)
@master_option
@token_option
@json_option
@client_command
def put(
    key: str,
    file: str,
    ttl: float | None,
    content_type: str,
    master: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Store FILE (or standard input, '-') under KEY."""
    with Client(master, token) as client:
        if file == "-":
            result = client.put(
                key, _chunks(sys.stdin.buffer), ttl_days=ttl, content_type=content_type
            )
        else:
            path = Path(file)
            if not path.is_file():
                raise click.BadParameter(f"no such file: {file}", param_hint="FILE")
            size = path.stat().st_size
            with path.open("rb") as fh, _progress(size, f"put {key}") as advance:
                result = client.put(
                    key, _chunks(fh, advance), ttl_days=ttl, content_type=content_type, size=size
                )
    if as_json:
        print_json(result)
    else:
        click.echo(f"stored {key} (version {result.get('version')})")


@click.command()
@click.argument("key")
@click.option("-o", "--output", default="-", help="File to write (default: standard output).")
@master_option
@token_option
@client_command
def get(key: str, output: str, master: str, token: str | None) -> None:
    """Write the value of KEY to standard output or to a file."""
    with Client(master, token) as client, client.open(key) as response:
        chunks = response.iter_bytes(1024 * 1024)
        if output == "-":
            copy_stream(chunks, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            size = int(response.headers.get("Content-Length", 0))
            with open(output, "wb") as out, _progress(size, f"get {key}") as advance:
                for chunk in chunks:
                    out.write(chunk)
                    advance(len(chunk))


@click.command()
@click.argument("key")
@master_option
@token_option
@client_command
def rm(key: str, master: str, token: str | None) -> None:
    """Delete KEY."""
    with Client(master, token) as client:
        client.delete(key)
    click.echo(f"deleted {key}")


@click.command()
@click.argument("prefix", required=False, default="")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after N keys.")
@master_option
@token_option
@json_option
@client_command
def ls(prefix: str, limit: int | None, master: str, token: str | None, as_json: bool) -> None:
    """List keys starting with PREFIX (all keys when empty)."""
    with Client(master, token) as client:
        entries = []
        for entry in client.list(prefix):
            entries.append(entry)
            if limit and len(entries) >= limit:
                break
    if as_json:
        print_json(entries)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    for column in ("key", "size", "version", "created", "expires"):
        table.add_column(column, justify="right" if column in ("size", "version") else "left")
    for e in entries:
        table.add_row(
            e["key"], str(e["size"]), str(e["version"]), e["created"] or "", e["expires"] or ""
        )
    Console().print(table)


@click.command()
@click.argument("key")
@master_option
@token_option
@json_option
@client_command
def stat(key: str, master: str, token: str | None, as_json: bool) -> None:
    """Show the metadata of KEY, replicas included."""
    with Client(master, token) as client:
        info = client.stat(key)
    if as_json:
        print_json(info)
        return
    for name, value in info.items():
        if name == "replicas":
            value = ", ".join(f"{r['node']} ({r['state']})" for r in value)
        click.echo(f"{name:>13}: {value}")
