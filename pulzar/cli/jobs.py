"""`pulzar job ...`: launch, list, show, logs, cancel, deploy."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import click
import orjson

from pulzar.cli.keys import client_command, json_option, master_option, print_json, token_option
from pulzar.client import Client

_EVERY = re.compile(r"^(\d+)\s*(s|sec|seconds?|m|min|minutes?|h|hours?|d|days?|w|weeks?)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_every(text: str) -> dict[str, Any]:
    """`5m` -> {"interval": "minutes", "time_unit": 5} (s, m, h, d, w)."""
    match = _EVERY.match(text.strip().lower())
    if not match:
        raise click.BadParameter(
            "use a number and a unit: 30s, 5m, 2h, 1d, 1w", param_hint="--every"
        )
    return {"interval": _UNITS[match.group(2)[0]], "time_unit": int(match.group(1))}


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value`; the value is read as JSON when it is JSON (numbers, true, lists...)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected key=value, got {text!r}", param_hint="-p")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


@click.group()
def job() -> None:
    """Run Python jobs on the cluster's volumes."""


@job.command()
@click.argument("name", metavar="GROUP/NAME")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter (repeatable); JSON values are parsed.",
)
@click.option("--every", default=None, metavar="5m", help="Run on a schedule: 30s, 5m, 2h, 1d.")
@click.option("--cron", default=None, metavar="EXPR", help="Run on a cron schedule (UTC).")
@click.option(
    "--max-runs", type=click.IntRange(min=1), default=None, help="Stop a schedule after N runs."
)
@click.option(
    "--data", "data_key", default=None, metavar="KEY", help="Run next to this key's value."
)
@click.option("--retries", type=click.IntRange(0, 100), default=0, help="Retries when a run fails.")
@click.option("--timeout", type=float, default=None, help="Seconds before a run is killed.")
@click.option("--wait", is_flag=True, help="Wait for the run to end and print its result.")
@master_option
@token_option
@json_option
@client_command
def launch(
    name: str,
    params: tuple[str, ...],
    every: str | None,
    cron: str | None,
    max_runs: int | None,
    data_key: str | None,
    retries: int,
    timeout: float | None,
    wait: bool,
    master: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Launch job GROUP/NAME (the file jobs/GROUP/NAME.py on the master)."""
    if every and cron:
        raise click.UsageError("give --every or --cron, not both")
    schedule: dict[str, Any] | None = None
    if every:
        schedule = parse_every(every)
    elif cron:
        schedule = {"cron": cron}
    if schedule is not None and max_runs:
        schedule["max_runs"] = max_runs
    with Client(master, token) as client:
        job_id = client.launch_job(
            name,
            dict(parse_param(p) for p in params),
            schedule=schedule,
            data_key=data_key,
            retries=retries,
            timeout=timeout,
        )
        record: dict[str, Any] = {"job_id": job_id}
        if wait and schedule is None:
            while (record := client.job(job_id))["status"] in ("pending", "running"):
                time.sleep(0.1)
    if as_json:
        print_json(record)
    elif wait and schedule is None:
        click.echo(
            f"job {job_id} {record['status']}: {orjson.dumps(record.get('result')).decode()}"
        )
        if record["status"] != "ready":
            raise SystemExit(1)
    else:
        what = "schedule" if schedule else "job"
        click.echo(f"{what} {job_id} launched")


@job.command(name="ls")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@master_option
@token_option
@json_option
@client_command
def list_jobs(limit: int, master: str, token: str | None, as_json: bool) -> None:
    """The job board: pending, running, ready, failed, cancelled and scheduled."""
    with Client(master, token) as client:
        board = client.jobs(limit)
    if as_json:
        print_json(board)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    for column in ("id", "job", "status", "node", "created", "duration"):
        table.add_column(column)
    for bucket in ("running", "pendings", "failed", "ready", "cancelled"):
        for j in board[bucket]:
            duration = f"{j['duration']:.3f}s" if j.get("duration") is not None else ""
            table.add_row(
                str(j["job_id"]),
                j["job_name"],
                j["status"],
                j["node"] or "",
                j["creation_time"] or "",
                duration,
            )
    for s in board["scheduled"]:
        table.add_row(
            str(s["job_id"]),
            s["job_name"],
            "scheduled",
            "",
            s["creation_time"] or "",
            f"next {s['next_execution']}",
        )
    Console().print(table)


@job.command()
@click.argument("job_id", type=int)
@master_option
@token_option
@json_option
@client_command
def show(job_id: int, master: str, token: str | None, as_json: bool) -> None:
    """Show run JOB_ID: status, node, times, result, error."""
    with Client(master, token) as client:
        record = client.job(job_id)
    if as_json:
        print_json(record)
        return
    for name in (
        "job_id",
        "job_name",
        "status",
        "node",
        "params",
        "attempts",
        "creation_time",
        "started",
        "finished",
        "duration",
        "result",
        "error",
        "schedule_id",
    ):
        value = record.get(name)
        if isinstance(value, dict | list):
            value = orjson.dumps(value).decode()
        click.echo(f"{name:>13}: {value}")


@job.command()
@click.argument("job_id", type=int)
@master_option
@token_option
@client_command
def logs(job_id: int, master: str, token: str | None) -> None:
    """Print what run JOB_ID wrote (stdout, stderr, its logger)."""
    with Client(master, token) as client:
        click.echo(client.job_logs(job_id), nl=False)


@job.command()
@click.argument("job_id", type=int)
@master_option
@token_option
@client_command
def cancel(job_id: int, master: str, token: str | None) -> None:
    """Cancel schedule JOB_ID for good, or stop run JOB_ID."""
    with Client(master, token) as client:
        click.echo(client.cancel_job(job_id))


@job.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@master_option
@token_option
@client_command
def deploy(directory: str, master: str, token: str | None) -> None:
    """Upload the jobs under DIRECTORY (GROUP/NAME.py files) to the master."""
    with Client(master, token) as client:
        names = client.deploy_jobs(directory)
    click.echo(f"deployed {len(names)} jobs: {', '.join(names)}")
