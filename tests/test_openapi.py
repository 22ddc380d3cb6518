"""The OpenAPI document stays true to the routes the master serves."""

from pathlib import Path

from pulzar.core.config import load_config
from pulzar.http.openapi import document
from pulzar.master.server import create_app

HIDDEN = ("/internal/", "/ui")


def served_routes(tmp_path: Path) -> set[tuple[str, str]]:
    config = load_config(
        env={"PULZAR_CLUSTER_SECRET": "s", "PULZAR_SERVER_DATA": str(tmp_path / "m")}
    )
    app = create_app(config)
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method in ("HEAD", "OPTIONS", "*") or path.startswith(HIDDEN):
            continue
        found.add((route.method.lower(), path))
    return found


def test_every_public_route_is_documented_and_nothing_else(tmp_path):
    documented = {(method, path) for path, ops in document()["paths"].items() for method in ops}
    assert served_routes(tmp_path) == documented


def test_every_operation_documents_its_answers_and_path_parameters():
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            expected = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert params == expected, (method, path)


async def test_metrics_report_requests_keys_nodes_and_jobs(cluster):
    status, _ = await cluster.put("/m", b"12345")
    assert status == 201
    async with cluster.http.get(cluster.url("/metrics")) as resp:
        text = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/plain"
    assert "pulzar_keys 1.0" in text
    assert (
        'pulzar_requests_total{method="PUT",process="master",route="/add_key/{key}",status="307"}'
        in text
    )
    assert 'pulzar_nodes{state="alive"} 1.0' in text
    assert 'pulzar_jobs{state="pending"}' in text
    assert "pulzar_request_seconds_bucket" in text and "pulzar_under_replicated_keys" in text
    async with cluster.http.get(f"{cluster.volumes[0].url}/metrics") as resp:
        volume_text = await resp.text()
    assert "pulzar_values 1.0" in volume_text and 'route="/add_key/{key}"' in volume_text
