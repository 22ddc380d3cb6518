"""The `pulzar` command: servers (up, master, volume) and client commands."""

from __future__ import annotations

import click

from pulzar import __version__
from pulzar.cli.admin import admin
from pulzar.cli.jobs import job
from pulzar.cli.keys import get, ls, put, rm, stat
from pulzar.cli.maintenance import backup, drain, restore
from pulzar.cli.servers import master, up, volume


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pulzar")
def cli() -> None:
    """Pulzar: a distributed key-value/blob store and job system.

    Start a local cluster with `pulzar up`, then store and read values with
    `pulzar put` and `pulzar get`, or over HTTP with curl.
    """


for command in (up, master, volume, put, get, rm, ls, stat, job, admin, backup, restore):
    cli.add_command(command)
volume.add_command(drain)


def main() -> None:
    cli(prog_name="pulzar")
