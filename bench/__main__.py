"""`python -m bench kv [--quick]`: run the workloads, print a table, save JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import kv
from bench.cluster import local_cluster


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("suite", choices=["kv"], nargs="?", default="kv")
    parser.add_argument("--quick", action="store_true", help="short runs (under 2 minutes)")
    args = parser.parse_args()
    with local_cluster(volumes=2) as url:
        rows = kv.run(url, args.quick)
    table = Table(title=f"Pulzar {args.suite} ({os.cpu_count()} cores, {platform.python_version()})")
    table.add_column("workload")
    table.add_column("Pulzar", justify="right")
    table.add_column("unit")
    for row in rows:
        table.add_row(row["workload"], f"{row['value']:.2f}", row["unit"])
    Console().print(table)
    out = Path(__file__).parent / "results" / f"{args.suite}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"suite": args.suite, "quick": args.quick, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
