"""The reference server: nginx from Debian, started by the benchmark on 127.0.0.1.

It runs with its own generated config in a temp directory, in the foreground (`daemon off`),
as a child process that is stopped afterwards; the system's nginx service is never touched.

    /files/<name>   the same files Pulzar serves (static, sendfile)
    /r/<name>       `return 307` to /files/<name>   (the master's redirect, the GET half)
    /put/<name>     `return 307` to /dav/<name>     (the master's redirect, the PUT half)
    /dav/<name>     WebDAV PUT (`dav_methods PUT`); not fsynced, one copy
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_CONF = """
daemon off;
master_process on;
worker_processes %(workers)d;
%(user)s
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    default_type application/octet-stream;
    client_max_body_size 0;
    client_body_buffer_size 128k;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    server {
        listen 127.0.0.1:%(port)d reuseport;
        root %(dir)s/www;
        location /files/ { }
        location /dav/ {
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }
        location ~ ^/r/(.*)$ { return 307 http://127.0.0.1:%(port)d/files/$1; }
        location ~ ^/put/(.*)$ { return 307 http://127.0.0.1:%(port)d/dav/$1; }
    }
}
"""


@dataclass(frozen=True, slots=True)
class Nginx:
    url: str
    root: Path
    pid: int

    @property
    def files(self) -> Path:
        """Where the served files go (`/files/<name>`)."""
        return self.root / "www" / "files"

    @property
    def dav(self) -> Path:
        return self.root / "www" / "dav"


def available() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


def version() -> str:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    try:
        out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    except OSError:
        return "not installed"
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start listening")


@contextmanager
def running_nginx(workers: int = 0) -> Iterator[Nginx]:
    """nginx on a free 127.0.0.1 port with a config of its own; `workers` 0 is one per core."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    workers = workers or os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="pulzar-bench-nginx-"))
    try:
        user = ""
        if os.geteuid() == 0:
            # As root, nginx's workers drop to an unprivileged user; let it read and write here.
            name = "nobody" if _has_user("nobody") else "www-data"
            user = f"user {name} {_group_of(name)};"
            root.chmod(0o755)
        for sub in ("www/files", "www/dav", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / sub).mkdir(parents=True)
            if user:
                (root / sub).chmod(0o777)
        port = _free_port()
        conf = root / "nginx.conf"
        conf.write_text(_CONF % {"workers": workers, "user": user, "dir": root, "port": port})
        proc = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_listening(port, proc, root / "error.log")
            yield Nginx(url=f"http://127.0.0.1:{port}", root=root, pid=proc.pid)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)  # graceful stop of this master and its workers
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGTERM)  # fast stop: workers exit too
                    proc.wait(timeout=10)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_of(user: str) -> str:
    import grp

    gid = pwd.getpwnam(user).pw_gid
    return grp.getgrgid(gid).gr_name
