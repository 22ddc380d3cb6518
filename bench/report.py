"""Rows of a benchmark run: the table printed at the end and the JSON kept in bench/results/."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


@dataclass
class Row:
    """One workload. `pulzar` and `reference` are in `unit`; `ratio` is pulzar / reference
    (for latencies too: there lower is better); `met` is None when there is no target."""

    workload: str
    pulzar: float
    unit: str
    target: str
    met: bool | None
    reference: float | None = None
    ratio: float | None = None
    #: Extra figures shown under the main one (p50/p99, errors, RSS).
    pulzar_detail: str = ""
    reference_detail: str = ""
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "n/a"
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "MB/s":
        return f"{value:,.0f} MB/s"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "B/key":
        return f"{value:,.0f} B/key"
    return f"{value:,.2f} {unit}"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("aiohttp", "uvloop", "lmdb", "orjson"):
        try:
            versions[name] = pkg_version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    from bench import nginx

    return {
        "cores": os.cpu_count(),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        # Other work on the machine skews every figure: the load when the table was made.
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "nginx": nginx.version(),
        **versions,
    }


def print_table(title: str, rows: list[Row], console: Console | None = None) -> None:
    table = Table(title=title, show_lines=True)
    table.add_column("workload", max_width=44)
    table.add_column("Pulzar", justify="right")
    table.add_column("reference (same run)", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", max_width=26)
    table.add_column("met", justify="center")
    for row in rows:
        pulzar = fmt(row.pulzar, row.unit) + (f"\n{row.pulzar_detail}" if row.pulzar_detail else "")
        ref = "-" if row.reference is None else fmt(row.reference, row.unit)
        if row.reference_detail:
            ref += f"\n{row.reference_detail}"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "-"}[row.met]
        workload = row.workload + (f"\n[dim]{row.note}[/dim]" if row.note else "")
        table.add_row(workload, pulzar, ref, ratio, row.target, met)
    (console or Console(width=200)).print(table)


def save(suite: str, quick: bool, rows: list[Row], extra: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"{suite}{'-quick' if quick else ''}-{stamp}.json"
    payload = {
        "suite": suite,
        "quick": quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "rows": [asdict(r) for r in rows],
        **extra,
    }
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return out


def markdown(rows: list[Row]) -> str:
    """The table as Markdown (for docs/performance.md)."""
    lines = [
        "| workload | Pulzar | nginx (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        pulzar = fmt(row.pulzar, row.unit)
        if row.pulzar_detail:
            pulzar += f" ({row.pulzar_detail})"
        ref = "-" if row.reference is None else fmt(row.reference, row.unit)
        if row.reference_detail:
            ref += f" ({row.reference_detail})"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        met = {True: "yes", False: "**no**", None: "-"}[row.met]
        workload = row.workload + (f" <br>*{row.note}*" if row.note else "")
        lines.append(f"| {workload} | {pulzar} | {ref} | {ratio} | {row.target} | {met} |")
    return "\n".join(lines) + "\n"
