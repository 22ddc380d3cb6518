"""`pulzar master`, `pulzar volume` and `pulzar up` (a whole local cluster)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

from pulzar.core.config import DEFAULT_MASTER_PORT, Config, load_config
from pulzar.core.errors import ConfigError


def _config(config_file: str | None, overrides: dict[tuple[str, str], Any]) -> Config:
    try:
        return load_config(config_file, overrides=overrides)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None


def _serve(make_app: Any, config: Config, host: str, port: int, access_log: bool) -> None:
    from pulzar.http.serve import serve, setup_logging

    setup_logging()
    try:
        app = make_app(config)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    try:
        serve(app, host, port, config, access_log=access_log)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration file (default: $PULZAR_CONFIG).",
)


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help=f"Port (default {DEFAULT_MASTER_PORT}).")
@click.option("--data", default=None, help="Data directory (default ./pulzar-data/master).")
@click.option("--public-url", default=None, help="URL clients and volumes use to reach it.")
@click.option(
    "--restore",
    "restore_from",
    multiple=True,
    metavar="VOLUME_URL",
    help="Rebuild the index from this volume at start (repeatable; the original's "
    "manage.py --restore).",
)
@config_option
def master(
    host: str | None,
    port: int | None,
    data: str | None,
    public_url: str | None,
    restore_from: tuple[str, ...],
    config_file: str | None,
) -> None:
    """Run the master: key index, node registry and the public API."""
    from functools import partial

    from pulzar.master.server import create_app

    config = _config(
        config_file,
        {
            ("server", "host"): host,
            ("server", "port"): port,
            ("server", "data"): data,
            ("server", "public_url"): public_url,
        },
    )
    make_app = partial(create_app, restore_from=list(restore_from) or None)
    _serve(make_app, config, config.server.host, config.server.port, config.server.access_log)


@click.group(invoke_without_command=True)
@click.option(
    "--master",
    "master_url",
    default=None,
    help="Master URL (default $PULZAR_MASTER or http://127.0.0.1:31414).",
)
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 31415).")
@click.option("--data", default=None, help="Data directory (default ./pulzar-data/volume).")
@click.option("--public-url", default=None, help="URL the master and clients use to reach it.")
@click.option("--name", default=None, help="Name shown in /admin/network (default host:port).")
@click.option("--max-bytes", type=int, default=None, help="Capacity treated as full, in bytes.")
@config_option
@click.pass_context
def volume(
    ctx: click.Context,
    master_url: str | None,
    host: str | None,
    port: int | None,
    data: str | None,
    public_url: str | None,
    name: str | None,
    max_bytes: int | None,
    config_file: str | None,
) -> None:
    """Run a volume: stores and serves values. Needs the master's cluster secret.

    `pulzar volume drain NODE` moves a volume's copies away before it is retired.
    """
    if ctx.invoked_subcommand is not None:
        return
    from pulzar.volume.server import create_app

    config = _config(
        config_file,
        {
            ("volume", "master"): master_url,
            ("volume", "host"): host,
            ("volume", "port"): port,
            ("volume", "dir"): data,
            ("volume", "public_url"): public_url,
            ("volume", "name"): name,
            ("volume", "max_bytes"): max_bytes,
        },
    )
    _serve(create_app, config, config.volume.host, config.volume.port, config.server.access_log)


@click.command()
@click.option(
    "--volumes",
    "count",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Number of volumes.",
)
@click.option("--data", default="./pulzar-data", show_default=True, help="Data directory.")
@click.option(
    "--port",
    type=int,
    default=DEFAULT_MASTER_PORT,
    show_default=True,
    help="Master port; volumes use the next ones.",
)
@config_option
def up(count: int, data: str, port: int, config_file: str | None) -> None:
    """Start a local cluster: one master and N volumes on 127.0.0.1. Ctrl-C stops it."""
    from pulzar.master.server import cluster_secret

    config = _config(config_file, {})
    root = Path(data).expanduser().resolve()
    secret = cluster_secret(config, root / "master")
    env = dict(os.environ, PULZAR_CLUSTER_SECRET=secret)
    master_url = f"http://127.0.0.1:{port}"
    base = [sys.executable, "-m", "pulzar"]
    extra = ["--config", config_file] if config_file else []
    commands = [
        [*base, "master", "--port", str(port), "--data", str(root / "master"), *extra],
        *(
            [
                *base,
                "volume",
                "--master",
                master_url,
                "--port",
                str(port + i),
                "--data",
                str(root / f"volume-{i}"),
                *extra,
            ]
            for i in range(1, count + 1)
        ),
    ]
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    procs = [subprocess.Popen(cmd, env=env) for cmd in commands]
    try:
        if _wait_healthy(master_url, procs, lambda: stopping):
            click.secho(f"Pulzar is up: master {master_url}", fg="green", err=True)
            click.echo(f"  dashboard: {master_url}/ui", err=True)
            for i in range(1, count + 1):
                click.echo(f"  volume {i}: http://127.0.0.1:{port + i}", err=True)
            click.echo(f"  data in {root}; Ctrl-C stops the cluster", err=True)
        while not stopping:
            if procs[0].poll() is not None:
                click.secho("the master stopped; stopping the cluster", fg="red", err=True)
                break
            time.sleep(0.2)
    finally:
        _stop_all(procs)
    code = procs[0].returncode
    if code not in (0, None, -signal.SIGTERM) and not stopping:
        sys.exit(1)


def _wait_healthy(url: str, procs: list[subprocess.Popen[bytes]], stopping: Any) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not stopping():
        if any(p.poll() is not None for p in procs):
            click.secho("a process of the cluster failed to start", fg="red", err=True)
            return False
        try:
            live = httpx.get(f"{url}/health", timeout=1).json()["data"]["live_volumes"]
            if live == len(procs) - 1:
                return True
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.1)
    return False


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
