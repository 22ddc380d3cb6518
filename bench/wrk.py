"""Driving wrk (the C load generator) with a generated Lua script, for the raw throughput rows.

The script cycles through a list of paths (each wrk thread from its own offset) and prints one
JSON line from `done()`; the latency figures are wrk's own (microseconds, per request).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile

from bench.loadgen import LoadResult

_MARK = "WRKJSON "

_SCRIPT = """
local paths = {%(paths)s}
local method = %(method)s
local body = %(body)s
local headers = {}
local counter = 0
thread_no = 0  -- a global: setup() sets it in each thread's state
local threads_started = 0

function setup(thread)
  thread:set("thread_no", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  counter = thread_no * 7919
end

request = function()
  counter = counter + 1
  local path = paths[(counter %% #paths) + 1]
  %(unique)s
  return wrk.format(method, path, headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,"err_status":%%d,"err_connect":%%d,' ..
    '"err_read":%%d,"err_write":%%d,"err_timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"mean_us":%%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean))
end
"""


#: wrk's figures, in the load generator's shape.
WrkResult = LoadResult


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(data: str | bytes) -> str:
    """A Lua string literal for any bytes (printable ASCII as is, the rest as `\\ddd`)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    out = []
    for byte in raw:
        if 32 <= byte < 127 and byte not in (34, 92):
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def run_wrk(
    base_url: str,
    paths: list[str],
    *,
    seconds: float,
    connections: int = 64,
    threads: int = 2,
    method: str = "GET",
    body: bytes | None = None,
    unique_suffix: bool = False,
) -> WrkResult:
    """Run wrk against `base_url` cycling through `paths`; with `unique_suffix`, every request
    gets a path of its own (`<path>-<thread>-<n>`, for PUTs of new keys)."""
    threads = max(1, min(threads, connections))
    unique = 'path = path .. "-" .. thread_no .. "-" .. counter' if unique_suffix else ""
    script = _SCRIPT % {
        "paths": ",".join(_lua_string(p) for p in paths),
        "method": _lua_string(method),
        "body": "nil" if body is None else _lua_string(body),
        "unique": unique,
        "mark": _MARK,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="pulzar-bench-") as fh:
        fh.write(script)
        fh.flush()
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            fh.name,
            base_url,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in out.stdout.splitlines():
        if line.startswith(_MARK):
            data = json.loads(line[len(_MARK) :])
            break
    else:
        raise RuntimeError(f"wrk printed no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    secs = data["duration_us"] / 1e6
    errors = sum(data[k] for k in data if k.startswith("err_"))
    return WrkResult(
        requests=data["requests"],
        seconds=secs,
        rps=data["requests"] / secs if secs else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
    )
