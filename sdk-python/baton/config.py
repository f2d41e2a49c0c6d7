"""Worker and client settings: the only place that reads ``BATON_*`` environment variables.

Names, defaults and validation messages follow ``docs/sdk-contract.md`` so that the Python, Node and
Java SDKs configure and fail the same way. An explicit value always wins over the environment.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["ClientOptions", "WorkerSettings", "client_options", "validate_action"]

ENV_NAMES = {
    "bootstrap_servers": "BATON_KAFKA_BOOTSTRAP_SERVERS",
    "group_id": "BATON_WORKER_GROUP",
    "concurrency": "BATON_WORKER_CONCURRENCY",
    "topic_prefix": "BATON_TOPIC_PREFIX",
    "max_payload_bytes": "BATON_MAX_PAYLOAD_BYTES",
    "topic_partitions": "BATON_TOPIC_PARTITIONS",
    "presence_interval": "BATON_WORKER_PRESENCE_INTERVAL",
    "drain_timeout": "BATON_WORKER_DRAIN_TIMEOUT",
    "deadline_grace": "BATON_WORKER_DEADLINE_GRACE",
    "max_abandoned": "BATON_WORKER_MAX_ABANDONED",
    "topic_replication_factor": "BATON_TOPIC_REPLICATION_FACTOR",
    "topic_min_insync_replicas": "BATON_TOPIC_MIN_INSYNC_REPLICAS",
}
# Round-1 names, still accepted (a DeprecationWarning once per name): old name -> (new name, old env var).
_DEPRECATED = {"heartbeat_interval": ("presence_interval", "BATON_WORKER_HEARTBEAT_INTERVAL")}
_WARNED: set[str] = set()
_FLOATS = frozenset(("presence_interval", "drain_timeout", "deadline_grace"))

_ACTION = re.compile(r"[A-Za-z0-9._-]{1,200}")
_PREFIX = re.compile(r"[A-Za-z0-9._-]*")
_HOST_PORT = re.compile(r"[^\s:,]+:(\d{1,5})")

_MSG_BOOTSTRAP = "bootstrap_servers must be a non-empty host:port list"
_MSG_GROUP = "group_id must be a non-empty string"
_MSG_CONCURRENCY = "concurrency must be an integer between 1 and 1000"
_MSG_PREFIX = "topic_prefix may contain only [A-Za-z0-9._-]"
_MSG_PAYLOAD = "max_payload_bytes must be a positive integer"
_MSG_PARTITIONS = "topic_partitions must be a positive integer"
_MSG_PRESENCE = "presence_interval must be a positive number of seconds"
_MSG_DRAIN = "drain_timeout must be a non-negative number of seconds"
_MSG_GRACE = "deadline_grace must be a non-negative number of seconds"
_MSG_ABANDONED = "max_abandoned must be a non-negative integer"
_MSG_REPLICATION = "topic_replication_factor must be a positive integer"
_MSG_MIN_ISR = "topic_min_insync_replicas must be a positive integer"

ENV_API_URL, ENV_API_KEY = "BATON_API_URL", "BATON_API_KEY"
DEFAULT_API_URL = "http://127.0.0.1:8080"
_API_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")
_API_KEY = re.compile(r"[\x21-\x7e]+")  # an HTTP header value: a newline would split the request
_MSG_API_URL = "base_url must be an http:// or https:// URL"
_MSG_API_KEY = "api_key must be printable ASCII without spaces"
_MSG_TIMEOUT = "timeout must be a positive number of seconds"


def validate_action(action: object) -> str:
    """Return ``action`` if it is a valid action name, else raise :class:`ConfigError`."""
    if not isinstance(action, str) or not _ACTION.fullmatch(action) or action == "DLT":
        raise ConfigError(f"invalid action name {action!r}: use 1-200 of [A-Za-z0-9._-], not 'DLT'")
    return action


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything a worker can be configured with, validated on construction.

    Build it with :meth:`from_env` to get the environment fallbacks; the constructor itself uses the
    defaults for anything not given and never reads the environment.
    """

    bootstrap_servers: str = "localhost:9092"
    group_id: str = "workflow-workers"
    concurrency: int = 8
    topic_prefix: str = "workflow-"
    max_payload_bytes: int = 1_048_576
    topic_partitions: int = 6
    presence_interval: float = 5.0
    drain_timeout: float = 30.0
    deadline_grace: float = 10.0
    max_abandoned: int | None = None  # None: = concurrency (set by __post_init__)
    topic_replication_factor: int = 1
    topic_min_insync_replicas: int | None = None  # None: the broker's default
    heartbeat_interval: InitVar[float | None] = None  # deprecated name of presence_interval

    def __post_init__(self, heartbeat_interval: float | None) -> None:
        if heartbeat_interval is not None:
            _warn_deprecated("heartbeat_interval", "presence_interval")
            object.__setattr__(self, "presence_interval", heartbeat_interval)
        if self.max_abandoned is None and _is_int(self.concurrency):
            object.__setattr__(self, "max_abandoned", self.concurrency)
        self._validate()
        self._validate_round2()

    def _validate(self) -> None:
        if not _valid_bootstrap(self.bootstrap_servers):
            raise ConfigError(_MSG_BOOTSTRAP)
        if not isinstance(self.group_id, str) or not self.group_id.strip():
            raise ConfigError(_MSG_GROUP)
        if not _is_int(self.concurrency) or not 1 <= self.concurrency <= 1000:
            raise ConfigError(_MSG_CONCURRENCY)
        if not isinstance(self.topic_prefix, str) or not _PREFIX.fullmatch(self.topic_prefix):
            raise ConfigError(_MSG_PREFIX)
        if not _is_int(self.max_payload_bytes) or self.max_payload_bytes < 1:
            raise ConfigError(_MSG_PAYLOAD)
        if not _is_int(self.topic_partitions) or self.topic_partitions < 1:
            raise ConfigError(_MSG_PARTITIONS)
        if not _is_number(self.presence_interval) or not self.presence_interval > 0:
            raise ConfigError(_MSG_PRESENCE)

    def _validate_round2(self) -> None:
        if not _is_number(self.drain_timeout) or not self.drain_timeout >= 0:
            raise ConfigError(_MSG_DRAIN)
        if not _is_number(self.deadline_grace) or not self.deadline_grace >= 0:
            raise ConfigError(_MSG_GRACE)
        if not _is_int(self.max_abandoned) or self.max_abandoned < 0:  # type: ignore[operator]
            raise ConfigError(_MSG_ABANDONED)
        if not _is_int(self.topic_replication_factor) or self.topic_replication_factor < 1:
            raise ConfigError(_MSG_REPLICATION)
        isr = self.topic_min_insync_replicas
        if isr is not None and (not _is_int(isr) or isr < 1):
            raise ConfigError(_MSG_MIN_ISR)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **explicit: Any) -> WorkerSettings:
        """Settings from explicit values (``None`` means "not given"), then ``BATON_*`` env, then defaults."""
        env = os.environ if env is None else env
        unknown = set(explicit) - set(ENV_NAMES) - set(_DEPRECATED)
        if unknown:
            raise TypeError(f"unknown worker settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for old, (new, old_var) in _DEPRECATED.items():
            if explicit.get(old) is not None:
                values[old] = explicit[old]
            elif env.get(old_var, "").strip() and not env.get(ENV_NAMES[new], "").strip():
                _warn_deprecated(old_var, ENV_NAMES[new])
                values[new] = _parse_env(new, env[old_var].strip())
        for name, var in ENV_NAMES.items():
            if explicit.get(name) is not None:
                values[name] = explicit[name]
            elif env.get(var, "").strip():
                values[name] = _parse_env(name, env[var].strip())
        return cls(**values)

    def replace(self, **explicit: Any) -> WorkerSettings:
        """A copy with the given non-``None`` values replaced (validated again).

        ``max_abandoned`` follows a new ``concurrency`` unless it was set to something else.
        """
        changes = {k: v for k, v in explicit.items() if v is not None}
        if "concurrency" in changes and "max_abandoned" not in changes and self.max_abandoned == self.concurrency:
            changes["max_abandoned"] = None
        return dataclasses.replace(self, **changes)

    def jobs_topic(self, action: str) -> str:
        """The topic jobs of ``action`` are published to."""
        return f"{self.topic_prefix}jobs.{action}"

    @property
    def results_topic(self) -> str:
        """The topic results are sent to."""
        return f"{self.topic_prefix}results"

    @property
    def dead_letter_topic(self) -> str:
        """The topic undecodable jobs are moved to."""
        return f"{self.topic_prefix}jobs.DLT"

    @property
    def workers_topic(self) -> str:
        """The topic of presence heartbeats."""
        return f"{self.topic_prefix}workers"


def _warn_deprecated(old: str, new: str) -> None:
    if old not in _WARNED:
        _WARNED.add(old)
        warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=4)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    # bool is an int subclass; True is not a concurrency.
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_bootstrap(value: object) -> bool:
    if not isinstance(value, str):
        return False
    entries = [e.strip() for e in value.split(",")]
    if not entries or any(not (m := _HOST_PORT.fullmatch(e)) or not 0 < int(m[1]) < 65536 for e in entries):
        return False
    return True


_MESSAGES = {
    "concurrency": _MSG_CONCURRENCY,
    "max_payload_bytes": _MSG_PAYLOAD,
    "topic_partitions": _MSG_PARTITIONS,
    "presence_interval": _MSG_PRESENCE,
    "drain_timeout": _MSG_DRAIN,
    "deadline_grace": _MSG_GRACE,
    "max_abandoned": _MSG_ABANDONED,
    "topic_replication_factor": _MSG_REPLICATION,
    "topic_min_insync_replicas": _MSG_MIN_ISR,
}


def _parse_env(name: str, raw: str) -> Any:
    """Convert a numeric env value; a value that does not parse fails with the option's own message."""
    if name not in _MESSAGES:
        return raw
    try:
        return float(raw) if name in _FLOATS else int(raw)
    except ValueError:
        raise ConfigError(_MESSAGES[name]) from None


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """What ``Client`` / ``AsyncClient`` connect with, validated."""

    base_url: str
    api_key: str | None = field(repr=False)  # never printed
    timeout: float


def client_options(
    base_url: str | None, api_key: str | None, timeout: float, env: Mapping[str, str] | None = None
) -> ClientOptions:
    """Explicit values, then ``BATON_API_URL`` / ``BATON_API_KEY``, then the defaults.

    An explicit empty ``api_key`` means "send no token" even when ``BATON_API_KEY`` is set.
    """
    env = os.environ if env is None else env
    url = base_url if base_url is not None else (env.get(ENV_API_URL, "").strip() or DEFAULT_API_URL)
    if not isinstance(url, str) or not _API_URL.fullmatch(url):
        raise ConfigError(_MSG_API_URL)
    key = api_key if api_key is not None else env.get(ENV_API_KEY, "").strip()
    if not isinstance(key, str) or (key and not _API_KEY.fullmatch(key)):
        raise ConfigError(_MSG_API_KEY)
    if not _is_number(timeout) or not 0 < timeout < math.inf:
        raise ConfigError(_MSG_TIMEOUT)
    return ClientOptions(url.rstrip("/"), key or None, float(timeout))
