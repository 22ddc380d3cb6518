"""`pulzar backup`, `pulzar restore`, and draining a volume."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from pulzar import backup as backups
from pulzar.cli.keys import client_command, master_option, token_option
from pulzar.client import Client


def _bar(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


@click.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@master_option
@token_option
@client_command
def backup(dest: Path, master: str, token: str | None) -> None:
    """Write a restorable backup of every key and value into the new directory DEST."""
    with Client(master, token) as client, _bar("backup") as bar:
        task = bar.add_task("backup", total=None)
        summary = backups.backup(
            client, dest, lambda done, total: bar.update(task, completed=done, total=total)
        )
    click.echo(f"backed up {summary.keys} keys, {summary.bytes} bytes in {summary.seconds:.1f}s")


@click.command()
@click.option(
    "--from",
    "source",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Load this backup into an empty cluster.",
)
@click.option(
    "--volume",
    "volumes",
    multiple=True,
    metavar="URL",
    help="Rebuild the index from this volume (repeatable; default: every volume "
    "registered with the master).",
)
@click.option("--force", is_flag=True, help="Merge into an index (or cluster) that has keys.")
@master_option
@token_option
@client_command
def restore(
    source: Path | None, volumes: tuple[str, ...], force: bool, master: str, token: str | None
) -> None:
    """Rebuild the master index from the volumes, or load a backup (--from)."""
    with Client(master, token) as client:
        if source is not None:
            with _bar("verify + load") as bar:
                task = bar.add_task("restore", total=None)
                summary = backups.restore(
                    client,
                    source,
                    force=force,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            click.echo(
                f"restored {summary.keys} keys, {summary.bytes} bytes in {summary.seconds:.1f}s"
            )
            return
        body = {"volumes": list(volumes), "force": force}
        client.admin("POST", "/admin/restore", json=body)
        with Progress(TextColumn("{task.description}"), transient=False) as bar:
            task = bar.add_task("rebuilding the index")
            while True:
                state = client.admin("GET", "/admin/restore")
                bar.update(
                    task,
                    description=(
                        f"rebuilding the index: {state['values_seen']} values read, "
                        f"{state['keys_restored']} keys restored"
                    ),
                )
                if not state["running"]:
                    break
                time.sleep(0.2)
    if state["error"]:
        raise click.ClickException(f"restore failed: {state['error']}")
    click.echo(
        f"index rebuilt from {state['volumes']} volumes: {state['keys_restored']} keys, "
        f"{state['keys_deleted']} deleted keys kept deleted"
    )


@click.command()
@click.argument("node")
@click.option("--undo", is_flag=True, help="Stop draining; the volume takes copies again.")
@master_option
@token_option
@client_command
def drain(node: str, undo: bool, master: str, token: str | None) -> None:
    """Move every copy off the volume NODE (id or name) before it is retired."""
    with Client(master, token) as client:
        info = client.admin("POST", f"/admin/drain/{node}", params={"undo": "1" if undo else "0"})
    if undo:
        click.echo(f"{info['node']} takes new copies again")
    else:
        click.echo(
            f"draining {info['node']}: its {info['keys']} values move to other volumes; "
            "`pulzar admin network` shows when it holds none"
        )
