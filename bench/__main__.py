"""`python -m bench all|kv|scale|jobs [--quick]`: run, print a table, save JSON in bench/results/.

Bounds: the default run takes under 10 minutes, `--quick` under 2.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from rich.console import Console

from bench import jobs, kv, report, scale


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suite", choices=["all", "kv", "scale", "jobs"], nargs="?", default="all")
    parser.add_argument("--quick", action="store_true", help="short runs (under 2 minutes)")
    args = parser.parse_args()
    # Wide enough for the table when the output goes to a file or a pipe.
    console = Console(width=max(Console().width, 180))
    started = time.monotonic()
    load_at_start = os.getloadavg()[0]
    rows: list[report.Row] = []
    extra: dict[str, Any] = {}
    if args.suite in ("all", "kv"):
        kv_rows, kv_extra = kv.run(args.quick, console)
        rows += kv_rows
        extra["kv"] = kv_extra
    if args.suite in ("all", "scale"):
        scale_rows, scale_extra = scale.run(args.quick, console)
        rows += scale_rows
        extra["scale"] = scale_extra
    if args.suite in ("all", "jobs"):
        if not jobs.available():
            console.print(f"jobs: skipped, missing {jobs.missing()}")
            extra["jobs"] = f"skipped: missing {jobs.missing()}"
        else:
            job_rows, extra["jobs"] = jobs.run(args.quick, console)
            rows += job_rows
    elapsed = time.monotonic() - started
    extra["elapsed_s"] = round(elapsed, 1)
    extra["loadavg_start"] = round(load_at_start, 2)
    if not rows:
        return
    machine = report.machine()
    title = (
        f"Pulzar {args.suite}{' --quick' if args.quick else ''}: {machine['cores']} cores "
        f"{machine['cpu']}, Python {machine['python']}, aiohttp {machine['aiohttp']}, "
        f"uvloop {machine['uvloop']}, {machine['nginx']}"
    )
    report.print_table(title, rows, console)
    out = report.save(args.suite, args.quick, rows, extra)
    console.print(
        f"took {elapsed:.0f} s; load average {load_at_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (other work on the machine skews the figures); "
        f"saved {out}"
    )


if __name__ == "__main__":
    main()
