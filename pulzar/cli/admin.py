"""`pulzar admin status|network|jobs`: the cluster at a glance."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from pulzar.cli.keys import client_command, json_option, master_option, print_json, token_option
from pulzar.client import Client


@click.group()
def admin() -> None:
    """Look at the cluster: index statistics, volumes, jobs."""


@admin.command()
@master_option
@token_option
@json_option
@client_command
def status(master: str, token: str | None, as_json: bool) -> None:
    """LMDB statistics of the master's key index."""
    with Client(master, token) as client:
        info = client.status()
    if as_json:
        print_json(info)
        return
    for name, value in info.items():
        click.echo(f"{name:>15}: {value}")


@admin.command()
@master_option
@token_option
@json_option
@client_command
def network(master: str, token: str | None, as_json: bool) -> None:
    """Every volume: state, disk use, load, keys, jobs."""
    with Client(master, token) as client:
        nodes = client.network()
    if as_json:
        print_json(nodes)
        return
    table = Table(box=None)
    for column in ("node", "id", "url", "state", "disk", "load", "keys", "jobs"):
        table.add_column(column, justify="right" if column in ("disk", "load", "keys") else "left")
    for n in nodes:
        state = n["state"] + (" (draining)" if n.get("draining") else "")
        color = {"alive": "green", "suspect": "yellow"}.get(n["state"], "red")
        table.add_row(n["node"], n["id"], n["url"], f"[{color}]{state}[/]",
                      f"{n['percent']:.1f}%", f"{n['load']:.2f}", str(n["keys"]),
                      f"{n.get('running_jobs', 0)}/{n.get('workers', 0)}")
    Console().print(table)


@admin.command()
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@master_option
@token_option
@json_option
@client_command
@click.pass_context
def jobs(ctx: click.Context, limit: int, master: str, token: str | None, as_json: bool) -> None:
    """The job board (same as `pulzar job ls`)."""
    from pulzar.cli.jobs import list_jobs

    ctx.invoke(list_jobs, limit=limit, master=master, token=token, as_json=as_json)
