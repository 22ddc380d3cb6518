"""TLS on every listener: a master and a volume on https, the client verifying them."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pulzar.client import Client
from pulzar.core.errors import Unavailable

from conftest import FAST_TIMERS, free_ports, pulzar_env, wait_until


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_master_and_volume_serve_tls_and_the_client_verifies_them(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    ca = ssl.create_default_context(cafile=str(cert))
    master_port, volume_port = free_ports(), free_ports()
    master = f"https://127.0.0.1:{master_port}"
    env = pulzar_env(
        {
            **FAST_TIMERS,
            "PULZAR_CLUSTER_SECRET": "tls-secret",
            "PULZAR_SECURITY_TLS_CERT": str(cert),
            "PULZAR_SECURITY_TLS_KEY": str(key),
            "PULZAR_SECURITY_TLS_CA": str(cert),
            "PULZAR_SERVER_PUBLIC_URL": master,
            "PULZAR_VOLUME_PUBLIC_URL": f"https://127.0.0.1:{volume_port}",
            "PULZAR_JOBS_WORKERS": "1",
        }
    )
    base = [sys.executable, "-m", "pulzar"]
    procs = [
        subprocess.Popen(
            [*base, "master", "--port", str(master_port), "--data", str(tmp_path / "m")],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                *base,
                "volume",
                "--master",
                master,
                "--port",
                str(volume_port),
                "--data",
                str(tmp_path / "v"),
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_until(
            lambda: httpx.get(f"{master}/health", verify=ca, timeout=1).status_code == 200,
            timeout=30,
            what="the TLS cluster to be up",
        )
        with Client(master, verify=str(cert)) as client:
            client.put("/secure", b"over tls")
            assert client.get("/secure") == b"over tls"
            assert client.network()[0]["url"].startswith("https://")
        with Client(master, retries=0) as unverified, pytest.raises(Unavailable):
            unverified.get("/secure")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{master_port}/health", timeout=2)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
