"""Configuration: one typed object, built once at the edge and passed in.

Sources, strongest first: command-line flags, `PULZAR_<SECTION>_<KEY>` environment variables
(plus the shortcuts `PULZAR_MASTER`, `PULZAR_TOKEN`, `PULZAR_CLUSTER_SECRET`), the TOML file
(`--config FILE` or `PULZAR_CONFIG`), and the defaults below. A bad value stops the start with one
line that names the setting (`ConfigError`). No other module reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulzar.core.errors import ConfigError

DEFAULT_MASTER_PORT = 31414
DEFAULT_MASTER_URL = f"http://127.0.0.1:{DEFAULT_MASTER_PORT}"


@dataclass
class ServerConfig:
    """`[server]`: the master process."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_MASTER_PORT
    data: str = "./pulzar-data/master"
    #: URL that clients and volumes use to reach the master (default http://host:port).
    public_url: str = ""
    #: One log line per request (turned off in benchmarks).
    access_log: bool = True
    #: Request limits, for the master and the volumes: the longest request line or header
    #: (bytes), seconds an idle keep-alive connection is kept, seconds a request body may
    #: stall between two reads, and uploads a volume takes at once (more get 503).
    max_header_size: int = 8190
    keepalive_timeout: float = 75.0
    body_timeout: float = 60.0
    max_uploads: int = 256


@dataclass
class VolumeConfig:
    """`[volume]`: a volume process."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_MASTER_PORT + 1
    dir: str = "./pulzar-data/volume"
    master: str = DEFAULT_MASTER_URL
    public_url: str = ""
    #: Human-readable name shown in /admin/network (default host:port).
    name: str = ""
    #: Capacity the volume treats as full, in bytes (0: the disk's own size).
    max_bytes: int = 0
    #: Values up to this size live inline in the volume's LMDB; larger ones are files.
    inline_max: int = 64 * 1024
    #: File values up to this size are checked against their checksum on every read (larger
    #: ones by the background scrub); a corrupt copy is never served.
    verify_max: int = 16 * 1024 * 1024
    #: Memory for recently read small values (up to 64 KiB each), in MiB (0: no cache).
    cache_mb: int = 16


@dataclass
class GeneralConfig:
    """`[general]`, as in the original's server.conf."""

    #: Days after which finished job records are purged.
    retention_policy: int = 90
    #: Largest value accepted, in MiB (413 above it).
    maxsize: int = 5 * 1024
    #: Copies of each value (R). 0: automatic, 2 when the cluster has two or more volumes.
    replicas: int = 0
    #: Copies that must be durable before a write is acknowledged (W). 0: all R.
    write_quorum: int = 0


@dataclass
class JobsConfig:
    """`[jobs]`: the job system (docs/jobs.md)."""

    #: The master's job directory: `<dir>/<group>/<name>.py` (`pulzar job deploy` writes here).
    dir: str = "jobs"
    #: Warm worker processes per volume (0: the number of cores).
    workers: int = 0
    #: Seconds a run may take before it is killed and failed (a launch may ask for another).
    timeout: float = 3600.0
    #: Seconds before the first retry of a failed run; doubles for each further one.
    retry_backoff: float = 1.0
    #: Seconds a `pulzar_data` job waits for a slot on a node holding its key before it runs
    #: elsewhere.
    data_wait: float = 2.0
    #: Captured output kept per run, in bytes (the end is kept).
    max_log: int = 65536
    #: Prefetch: runs the master hands a volume beyond its free workers, queued there so that a
    #: worker that finishes starts the next run at once, without a round trip to the master (the
    #: throughput of short jobs). At most `prefetch` runs, and no more than the volume's workers
    #: get through in `prefetch_seconds` at the duration of its recent runs: long jobs are not
    #: prefetched (a queued run would wait behind them while another volume may free up).
    #: `prefetch = 0` turns it off.
    prefetch: int = 64
    prefetch_seconds: float = 0.05


@dataclass
class BackupConfig:
    """`[backup]`."""

    #: Run backups on a schedule (the master writes them into `dest`).
    active: bool = False
    #: Directory that receives one sub-directory per backup (`pulzar-YYYYmmdd-HHMMSS`).
    dest: str = ""
    #: Hours between scheduled backups.
    interval: float = 24.0
    #: Scheduled backups kept; older ones are removed.
    keep: int = 7


@dataclass
class SecurityConfig:
    """`[security]`: see DESIGN.md section 9."""

    #: Bearer token for the public API ("" leaves it open); `PULZAR_TOKEN`.
    token: str = ""
    #: Token for what runs code or reshapes the cluster: launching and cancelling jobs,
    #: deploying job code, restore, drain. The read/write token is not enough for those.
    admin_token: str = ""
    #: With a token set: let GET and HEAD requests through without it.
    reads_open: bool = False
    #: Shared secret that signs internal traffic and tickets. The master generates one in its
    #: data directory when none is given; a volume must be given the master's.
    cluster_secret: str = ""
    #: Seconds a write ticket from a 307 stays valid.
    ticket_ttl: float = 600.0
    #: Seconds a read ticket in a GET's 307 stays valid.
    read_ticket_ttl: float = 60.0
    #: TLS for every listener of this process: certificate and key files (PEM).
    tls_cert: str = ""
    tls_key: str = ""
    #: CA bundle that internal calls and clients verify peers with ("" : the system's).
    tls_ca: str = ""


@dataclass
class TimersConfig:
    """`[timers]`: every periodic action, in seconds (tests run them at 0.1-0.2)."""

    heartbeat: float = 1.0
    suspect_after: float = 3.0
    dead_after: float = 6.0
    ttl_sweep: float = 30.0
    #: How often a volume retries to reach the master while it is away.
    reconnect: float = 1.0
    #: How often the master looks for under-replicated keys and unbalanced volumes.
    repair: float = 5.0
    #: How long a dead node still counts as holding its copies (it may come back).
    repair_after: float = 30.0
    #: How often a volume re-verifies a batch of its values' checksums.
    scrub: float = 60.0
    #: How long a volume waits for a replica before it places the copy elsewhere.
    replica_timeout: float = 10.0


@dataclass
class RepairConfig:
    """`[repair]`: how hard repair, rebalancing and scrubbing may work."""

    #: Copies made at the same time.
    parallel: int = 4
    #: Bytes a second for repair copies, in MiB (0: unlimited).
    bandwidth: float = 50.0
    #: Bytes a second a volume reads to re-verify checksums, in MiB (0: unlimited).
    scrub_bandwidth: float = 20.0
    #: Values checked per scrub batch.
    scrub_batch: int = 1000


@dataclass
class StorageConfig:
    """`[storage]`: LMDB settings shared by master and volumes."""

    #: Address space reserved for each LMDB map, in GiB; only what is used takes disk.
    map_size_gb: int = 1024


@dataclass
class ExtensionsConfig:
    """`[extensions]`: code run by `GET|PUT /extension/{app_id}/...` (docs/extensions.md)."""

    #: Directory of your extension modules (`<dir>/<app_id>.py`); the shipped ones (example,
    #: search, ocr, imagematching) are always there, and a module here of the same name wins.
    dir: str = "extensions"
    #: Seconds one call may run; past it the call gets 504 and its worker process is replaced.
    timeout: float = 60.0
    #: Worker processes that run extensions (started on first use; more calls wait for one).
    workers: int = 2
    #: Hosts that `imagematching`'s `image_url=` may fetch from, comma-separated, as `host`
    #: (any port) or `host:port`; this cluster's own master and volumes are always allowed.
    allowed_hosts: str = ""


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    volume: VolumeConfig = field(default_factory=VolumeConfig)
    general: GeneralConfig = field(default_factory=GeneralConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    timers: TimersConfig = field(default_factory=TimersConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    extensions: ExtensionsConfig = field(default_factory=ExtensionsConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)

    @property
    def master_url(self) -> str:
        return self.server.public_url or f"http://{self.server.host}:{self.server.port}"

    @property
    def volume_url(self) -> str:
        return self.volume.public_url or f"http://{self.volume.host}:{self.volume.port}"


_SHORTCUTS = {
    "PULZAR_MASTER": ("volume", "master"),
    "PULZAR_TOKEN": ("security", "token"),
    "PULZAR_CLUSTER_SECRET": ("security", "cluster_secret"),
}


def _coerce(section: str, key: str, kind: Any, value: Any) -> Any:
    where = f"[{section}] {key}"
    if kind in (int, "int"):
        if isinstance(value, bool):
            raise ConfigError(f"config error: {where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"config error: {where}: expected an integer, got {value!r}"
            ) from None
    if kind in (float, "float"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config error: {where}: expected a number, got {value!r}") from None
        if number < 0:
            raise ConfigError(f"config error: {where}: must not be negative, got {value!r}")
        return number
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", "none", ""):
            return False
        raise ConfigError(f"config error: {where}: expected true or false, got {value!r}")
    if not isinstance(value, str | int | float):
        raise ConfigError(f"config error: {where}: expected a string, got {value!r}")
    return str(value)


def _apply(config: Config, section: str, key: str, value: Any) -> None:
    part = getattr(config, section, None)
    if part is None or not dataclasses.is_dataclass(part):
        raise ConfigError(f"config error: unknown section [{section}]")
    kinds = {f.name: f.type for f in dataclasses.fields(part)}
    if key not in kinds:
        raise ConfigError(f"config error: unknown setting [{section}] {key}")
    setattr(part, key, _coerce(section, key, kinds[key], value))


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, str], Any] | None = None,
) -> Config:
    """Build the configuration: defaults < TOML file < environment < `overrides` (flags).

    `overrides` maps `(section, key)` to a value; `None` values are ignored so that click
    options that were not given fall through to the lower layers.
    """
    env = dict(os.environ) if env is None else dict(env)
    config = Config()
    path = path or env.get("PULZAR_CONFIG") or None
    if path:
        try:
            with open(path, "rb") as fh:
                document = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config error: file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config error: {path} is not valid TOML: {exc}") from None
        for section, values in document.items():
            if not isinstance(values, dict):
                raise ConfigError(f"config error: {path}: '{section}' must be a [section]")
            for key, value in values.items():
                _apply(config, section, key, value)
    for name, (section, key) in _SHORTCUTS.items():
        if name in env:
            _apply(config, section, key, env[name])
    for section_field in dataclasses.fields(config):
        part = getattr(config, section_field.name)
        for f in dataclasses.fields(part):
            name = f"PULZAR_{section_field.name}_{f.name}".upper()
            if name in env:
                _apply(config, section_field.name, f.name, env[name])
    for (section, key), value in (overrides or {}).items():
        if value is not None:
            _apply(config, section, key, value)
    _check(config)
    return config


def _check(config: Config) -> None:
    for section, key in (("server", "port"), ("volume", "port")):
        port = getattr(getattr(config, section), key)
        if not 0 <= port <= 65535:
            raise ConfigError(f"config error: [{section}] {key}: {port} is not a port number")
    if config.general.maxsize <= 0:
        raise ConfigError("config error: [general] maxsize must be a positive number of MiB")
    if not 0 <= config.general.replicas <= 16:
        raise ConfigError("config error: [general] replicas must be between 0 and 16")
    if not 0 <= config.general.write_quorum <= 16:
        raise ConfigError("config error: [general] write_quorum must be between 0 and 16")
    for f in dataclasses.fields(config.timers):
        if getattr(config.timers, f.name) <= 0:
            raise ConfigError(f"config error: [timers] {f.name} must be greater than 0")
    if config.timers.dead_after < config.timers.suspect_after:
        raise ConfigError("config error: [timers] dead_after must not be less than suspect_after")
    if bool(config.security.tls_cert) != bool(config.security.tls_key):
        raise ConfigError("config error: [security] tls_cert and tls_key go together")
    if config.server.max_uploads < 1 or config.server.max_header_size < 1024:
        raise ConfigError("config error: [server] max_uploads >= 1, max_header_size >= 1024")
    if not 0 <= config.jobs.workers <= 256:
        raise ConfigError("config error: [jobs] workers must be between 0 and 256")
    if not 0 <= config.jobs.prefetch <= 10000 or config.jobs.prefetch_seconds < 0:
        raise ConfigError(
            "config error: [jobs] prefetch must be between 0 and 10000, prefetch_seconds >= 0"
        )
    if config.jobs.timeout <= 0:
        raise ConfigError("config error: [jobs] timeout must be greater than 0")
    if config.backup.active and not config.backup.dest:
        raise ConfigError("config error: [backup] active needs [backup] dest")
    if config.backup.interval <= 0 or config.backup.keep < 1:
        raise ConfigError("config error: [backup] interval and keep must be positive")
    if config.volume.inline_max < 0 or config.volume.max_bytes < 0 or config.volume.cache_mb < 0:
        raise ConfigError("config error: [volume] sizes must not be negative")
    if config.extensions.timeout <= 0:
        raise ConfigError("config error: [extensions] timeout must be greater than 0")
    if not 1 <= config.extensions.workers <= 64:
        raise ConfigError("config error: [extensions] workers must be between 1 and 64")


def data_path(directory: str) -> Path:
    return Path(directory).expanduser().resolve()
