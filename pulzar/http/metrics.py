"""Prometheus metrics of a master or a volume (`GET /metrics`, text format).

Per request: count and latency by route and status, bytes in and out. The rest (keys, copies
under-replicated, jobs by state, nodes and their heartbeats) is read from the services when
Prometheus scrapes, so it costs nothing between scrapes. Each application has its own registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pulzar.http.responses import Handler

REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
#: Counts one request: (method, route, status, seconds, response and request body bytes).
Record = Callable[[str, str, int, float, int, int], None]
RECORD: web.AppKey[Record] = web.AppKey("metrics_record")
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)

#: A function that yields gauges as (name, help, [(labels, value), ...]).
Gauges = Callable[[], Iterable[tuple[str, str, list[tuple[dict[str, str], float]]]]]


class _Scrape(Collector):
    def __init__(self, gauges: Gauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterable[Metric]:
        for name, text, samples in self._gauges():
            labels = sorted({k for labels, _ in samples for k in labels})
            family = GaugeMetricFamily(name, text, labels=labels)
            for sample_labels, value in samples:
                family.add_metric([sample_labels.get(k, "") for k in labels], value)
            yield family


def setup(app: web.Application, process: str, gauges: Gauges) -> None:
    """Count every request of `app` and serve `GET /metrics`."""
    registry = CollectorRegistry(auto_describe=True)
    requests = Counter(
        "pulzar_requests",
        "Requests by route and status",
        ["process", "method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "pulzar_request_seconds",
        "Request latency by route",
        ["process", "method", "route"],
        buckets=_BUCKETS,
        registry=registry,
    )
    bytes_in = Counter(
        "pulzar_bytes_received", "Request body bytes", ["process"], registry=registry
    )
    bytes_out = Counter("pulzar_bytes_sent", "Response body bytes", ["process"], registry=registry)
    registry.register(_Scrape(gauges))
    app[REGISTRY] = registry
    # `labels()` takes a lock and builds its key on every call: look each series up once.
    received, sent = bytes_in.labels(process), bytes_out.labels(process)
    series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def record(
        method: str, route: str, status: int, seconds: float, body_out: int, body_in: int
    ) -> None:
        found = series.get((method, route, status))
        if found is None:
            found = series[(method, route, status)] = (
                requests.labels(process, method, route, str(status)),
                latency.labels(process, method, route),
            )
        found[0].inc()
        found[1].observe(seconds)
        if body_out:
            sent.inc(body_out)
        if body_in:
            received.inc(body_in)

    app[RECORD] = record

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        record(
            request.method,
            route,
            response.status,
            time.perf_counter() - started,
            response.content_length or 0,
            request.content_length or 0,
        )
        return response

    app.middlewares.insert(0, measure)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    app.router.add_get("/metrics", metrics)


def gauge(name: str, text: str, value: float, **labels: str) -> tuple[str, str, list[Any]]:
    return name, text, [(labels, value)]
