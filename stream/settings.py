"""c360's settings: one typed, frozen object read from the environment.

Every setting has an environment variable (``C360_*``), a type, a default and a
line of documentation; ``docs/settings.md`` is generated from this module
(``c360 settings --markdown``) and a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints


class SettingsError(ValueError):
    """A setting's environment value is malformed or out of range."""


def _setting(
    env: str,
    default: Any,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    return field(
        default=default,
        metadata={"env": env, "doc": doc, "minimum": minimum, "maximum": maximum},
    )


def out_of_range(f: dataclasses.Field, value: Any) -> str | None:
    """Why ``value`` is not allowed for the field ``f`` declared with a ``minimum`` or a
    ``maximum`` in its metadata (a float must be finite: ``nan < minimum`` is False),
    or None. Settings and the connectors' configurations share it."""
    env = f.metadata["env"]
    if isinstance(value, float) and not math.isfinite(value):
        return f"{env}={value} is not a finite number"
    minimum, maximum = f.metadata.get("minimum"), f.metadata.get("maximum")
    if minimum is not None and value < minimum:
        return f"{env}={value} is below its minimum {minimum}"
    if maximum is not None and value > maximum:
        return f"{env}={value} is above its maximum {maximum}"
    return None


RECORD_MAX_BYTES_LIMIT = 4_000_000
"""The largest ``C360_RECORD_MAX_BYTES``: a record of that size, with its key and the
record's and batch's overhead, stays under the 4 MiB (``topics.MAX_RECORD_BYTES``) that
c360's topics and producers take; a connector's batch any larger would be refused by its
producer (the chain connector stops, the collector answers 500)."""


OTHER_ENV = frozenset(
    {
        "C360_KAFKA_PORT",  # ops/kafka/kafka.sh: the local broker
        "C360_KAFKA_HOME",
        "C360_KAFKA_HEAP",
        "C360_KAFKA_START_TIMEOUT",
        "C360_PROPERTY_EXAMPLES",  # tests: examples per property test
    }
)
"""``C360_*`` variables read outside :class:`Settings` and the connectors' configs."""


WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
"""Bind addresses that mean every interface: no address to reach a worker at."""


def _url_host(host: str) -> str:
    """A host as a URL writes it (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def unknown_env(known: frozenset[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """A line for each ``C360_*`` variable of ``environ`` that nothing reads (a typo is
    otherwise a silent default), with the nearest known name."""
    env = os.environ if environ is None else environ
    lines = []
    for name in sorted(n for n in env if n.startswith("C360_") and n not in known):
        near = difflib.get_close_matches(name, known, n=1)
        lines.append(
            f"{name} is not a c360 setting" + (f" (did you mean {near[0]}?)" if near else "")
        )
    return lines


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of a c360 worker, connector and tool. Build with :meth:`from_env`."""

    # --- Kafka ---
    kafka_bootstrap: str = _setting(
        "C360_KAFKA_BOOTSTRAP", "127.0.0.1:19092", "Kafka bootstrap servers, host:port[,host:port]."
    )
    app_id: str = _setting(
        "C360_APP_ID", "c360", "Faust application id: consumer group and changelog topic prefix."
    )
    topic_prefix: str = _setting(
        "C360_TOPIC_PREFIX", "c360.", "Prefix of every c360 topic name (isolates deployments)."
    )
    partitions: int = _setting(
        "C360_PARTITIONS",
        4,
        "Partitions of every keyed topic. A worker refuses to start when an existing "
        "topic has a different count.",
        minimum=1,
    )
    replication: int = _setting(
        "C360_REPLICATION", 1, "Replication factor of the topics c360 creates.", minimum=1
    )
    batch_max_events: int = _setting(
        "C360_BATCH_MAX_EVENTS",
        500,
        "Most events one Kafka record (a batch) may carry; larger batches are dead-lettered.",
        minimum=1,
    )
    record_max_bytes: int = _setting(
        "C360_RECORD_MAX_BYTES",
        1_000_000,
        "Largest input record accepted; an oversize record is dead-lettered with a prefix. "
        "At most 4000000: c360's topics and producers take records of up to 4 MiB.",
        minimum=1024,
        maximum=RECORD_MAX_BYTES_LIMIT,
    )
    # --- Faust worker ---
    data_dir: Path = _setting(
        "C360_DATA_DIR", Path(".c360/data"), "Where a worker keeps its RocksDB state."
    )
    web_host: str = _setting(
        "C360_WEB_HOST", "127.0.0.1", "Interface the worker's web server binds to (loopback)."
    )
    web_port: int = _setting(
        "C360_WEB_PORT", 6066, "Port of the worker's web server.", minimum=1, maximum=65535
    )
    web_advertised_url: str = _setting(
        "C360_WEB_ADVERTISED_URL",
        "",
        "URL at which the other workers reach this worker's web server (a lookup of a key "
        "this worker owns is forwarded there). Empty: http://C360_WEB_HOST:C360_WEB_PORT, "
        "with this machine's host name when C360_WEB_HOST is a wildcard (0.0.0.0, ::).",
    )
    api_key: str = _setting(
        "C360_API_KEY",
        "",
        "Key required by the /v1 API (header 'Authorization: Bearer KEY' or 'X-API-Key'). "
        "Empty: the API answers 401 to everyone.",
    )
    session_timeout: float = _setting(
        "C360_SESSION_TIMEOUT",
        6.0,
        "Consumer group session timeout in seconds (faust's default of 60 s slows every "
        "start). From 6 to 1800: the range a Kafka broker accepts by default "
        "(group.min/max.session.timeout.ms); out of it, the worker never joins its group.",
        minimum=6,
        maximum=1800,
    )
    heartbeat_interval: float = _setting(
        "C360_HEARTBEAT_INTERVAL", 0.5, "Consumer group heartbeat interval in seconds.", minimum=0.1
    )
    rebalance_timeout: float = _setting(
        "C360_REBALANCE_TIMEOUT", 6.0, "Consumer group rebalance timeout in seconds.", minimum=1
    )
    standby_replicas: int = _setting(
        "C360_STANDBY_REPLICAS", 0, "Standby replicas of every table (0 on one worker).", minimum=0
    )
    log_level: str = _setting("C360_LOG_LEVEL", "info", "Worker log level.")
    # --- RocksDB (per partition database) ---
    rocksdb_block_cache_mb: int = _setting(
        "C360_ROCKSDB_BLOCK_CACHE_MB",
        16,
        "Block cache of each partition database, MiB (faust's default is 2 GiB each).",
        minimum=1,
    )
    rocksdb_write_buffer_mb: int = _setting(
        "C360_ROCKSDB_WRITE_BUFFER_MB",
        8,
        "Memtable size of each partition database, MiB.",
        minimum=1,
    )
    rocksdb_max_write_buffers: int = _setting(
        "C360_ROCKSDB_MAX_WRITE_BUFFERS", 2, "Memtables per partition database.", minimum=1
    )
    rocksdb_bloom_bits: int = _setting(
        "C360_ROCKSDB_BLOOM_BITS",
        10,
        "Bloom filter bits per key of each partition database's files (faust's default "
        "is 3: about one lookup of an absent key in four reads a block anyway).",
        minimum=1,
    )
    rocksdb_memtable_bloom: float = _setting(
        "C360_ROCKSDB_MEMTABLE_BLOOM",
        0.02,
        "Bloom filter of each memtable, as a fraction of the memtable's size (RocksDB "
        "caps it at 0.25; 0: none): 0.02 of an 8 MiB memtable is ~13 bits per key for "
        "the route stage's ~100,000 event ids. Without it, a lookup of an absent key "
        "searches the memtable's skip list, which slows as the memtable fills.",
        minimum=0.0,
        maximum=0.25,
    )
    rocksdb_max_open_files: int = _setting(
        "C360_ROCKSDB_MAX_OPEN_FILES", 256, "Open files per partition database.", minimum=16
    )
    state_commit_interval: float = _setting(
        "C360_STATE_COMMIT_INTERVAL",
        0.2,
        "Seconds a stage partition's state may stay uncommitted after its outputs were "
        "acknowledged (0: commit every group). Small groups under steady input then "
        "write a row touched many times once; the API reads what is committed, and a "
        "stop or rebalance redoes at most this much input.",
        minimum=0.0,
    )
    yield_after: float = _setting(
        "C360_YIELD_AFTER",
        0.002,
        "Seconds of work after which ingest or a stage hands the event loop to lookups "
        "and the other agents (between records, between a profile record's steps, while "
        "a commit encodes). Lower answers lookups sooner for some CPU: 0.001 took the "
        "API's p99 at 4,000 events/s from 12 to 8 ms, for 3-10 % more CPU per event "
        "(0.005 had taken it to 28-33 ms against 19-21 at 1,400 events/s).",
        minimum=0.0001,
    )
    # --- Identity and profiles ---
    rules_file: Path | None = _setting(
        "C360_RULES_FILE",
        None,
        "Identity rules file (JSON); empty: the built-in defaults (docs/identity.md).",
    )
    tick_interval: float = _setting(
        "C360_TICK_INTERVAL",
        60.0,
        "Seconds between the ticks that carry 'now' to every route and profile partition; "
        "the first is sent at start. 0: none (time comes only from `c360 tick`).",
        minimum=0,
    )

    # ------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from ``environ`` (default: ``os.environ``); overrides win."""
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None and raw.strip() != "":
                values[f.name] = _parse(f, hints[f.name], raw.strip())
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            problem = out_of_range(f, getattr(self, f.name))
            if problem is not None:
                raise SettingsError(problem)
        if self.heartbeat_interval >= self.session_timeout:
            raise SettingsError(
                f"C360_HEARTBEAT_INTERVAL={self.heartbeat_interval} must be below "
                f"C360_SESSION_TIMEOUT={self.session_timeout} (Kafka drops a member whose "
                "heartbeats come later than the session timeout)"
            )
        for server in self.kafka_bootstrap.split(","):
            server = server.strip()
            host, _, port = server.rpartition(":") if ":" in server else (server, "", "9092")
            if not host or not port.isdigit():  # no port: Kafka's 9092
                raise SettingsError(
                    f"C360_KAFKA_BOOTSTRAP={self.kafka_bootstrap!r}: {server!r} is not host:port"
                )
        if self.web_advertised_url:
            url = urllib.parse.urlsplit(self.web_advertised_url)
            try:
                port = url.port
            except ValueError:
                port = -1
            if (
                url.scheme not in ("http", "https")
                or not url.hostname
                or port == -1
                or (url.path not in ("", "/") or url.query or url.fragment)
            ):
                raise SettingsError(
                    f"C360_WEB_ADVERTISED_URL={self.web_advertised_url!r} is not "
                    "http(s)://host[:port]"
                )
        if self.log_level.lower() not in {"debug", "info", "warning", "error", "critical"}:
            raise SettingsError(f"C360_LOG_LEVEL={self.log_level!r} is not a log level")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables (for a subprocess)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.metadata["env"]] = "" if value is None else str(value)
        return out

    @property
    def web_url(self) -> str:
        """Where this worker's web server answers, for a client on the same machine."""
        host = "127.0.0.1" if self.web_host in WILDCARD_HOSTS else self.web_host
        return f"http://{_url_host(host)}:{self.web_port}"

    @property
    def advertised_url(self) -> str:
        """Where the other workers reach this worker's web server (faust's canonical URL,
        by which its router tells which worker owns a key): ``C360_WEB_ADVERTISED_URL``,
        else the bound address, else (bound to a wildcard, which names every worker
        alike, so that each took itself for the owner of every key and answered 404 for
        the keys of the others) this machine's host name, as faust's own default."""
        if self.web_advertised_url:
            return self.web_advertised_url.rstrip("/")
        host = socket.gethostname() if self.web_host in WILDCARD_HOSTS else self.web_host
        return f"http://{_url_host(host)}:{self.web_port}"

    @classmethod
    def env_names(cls) -> frozenset[str]:
        """The environment variables of these settings."""
        return frozenset(f.metadata["env"] for f in dataclasses.fields(cls))

    @classmethod
    def markdown(cls) -> str:
        """The settings table for docs/settings.md."""
        hints = get_type_hints(cls)
        lines = [
            "# Settings",
            "",
            "Generated from `stream/settings.py` by `c360 settings --markdown`; "
            "do not edit by hand.",
            "Every worker, connector and tool reads these environment variables.",
            "",
            "| Variable | Type | Default | Meaning |",
            "| --- | --- | --- | --- |",
        ]
        for f in dataclasses.fields(cls):
            default = f.default
            shown = "(empty)" if default in ("", None) else f"`{default}`"
            type_name = getattr(hints[f.name], "__name__", str(hints[f.name]))
            type_name = type_name.replace("pathlib.", "").replace(" | None", "")
            lines.append(f"| `{f.metadata['env']}` | {type_name} | {shown} | {f.metadata['doc']} |")
        return "\n".join(lines) + "\n"


def whole(raw: str) -> int:
    """``raw`` as an int, refused in words a reader of the setting understands."""
    try:
        return int(raw)
    except ValueError:
        raise ValueError("not a whole number") from None


def number(raw: str) -> float:
    """``raw`` as a float, refused in words a reader of the setting understands."""
    try:
        return float(raw)
    except ValueError:
        raise ValueError("not a number") from None


def _parse(f: dataclasses.Field, hint: Any, raw: str) -> Any:
    env = f.metadata["env"]
    base = next((t for t in getattr(hint, "__args__", (hint,)) if t is not type(None)), hint)
    try:
        if base is bool:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true or false")
        if base is int:
            return whole(raw)
        if base is float:
            return number(raw)
        if base is Path:
            return Path(raw)
        return raw
    except ValueError as exc:
        raise SettingsError(f"{env}={raw!r}: {exc}") from None
