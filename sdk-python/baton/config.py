"""Worker settings: the only place that reads ``BATON_*`` environment variables.

Names, defaults and validation messages follow ``docs/sdk-contract.md`` so that the Python, Node and
Java SDKs configure and fail the same way. An explicit value always wins over the environment.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["WorkerSettings", "validate_action"]

ENV_NAMES = {
    "bootstrap_servers": "BATON_KAFKA_BOOTSTRAP_SERVERS",
    "group_id": "BATON_WORKER_GROUP",
    "concurrency": "BATON_WORKER_CONCURRENCY",
    "topic_prefix": "BATON_TOPIC_PREFIX",
    "max_payload_bytes": "BATON_MAX_PAYLOAD_BYTES",
    "topic_partitions": "BATON_TOPIC_PARTITIONS",
    "heartbeat_interval": "BATON_WORKER_HEARTBEAT_INTERVAL",
}

_ACTION = re.compile(r"[A-Za-z0-9._-]{1,200}")
_PREFIX = re.compile(r"[A-Za-z0-9._-]*")
_HOST_PORT = re.compile(r"[^\s:,]+:(\d{1,5})")

_MSG_BOOTSTRAP = "bootstrap_servers must be a non-empty host:port list"
_MSG_GROUP = "group_id must be a non-empty string"
_MSG_CONCURRENCY = "concurrency must be an integer between 1 and 1000"
_MSG_PREFIX = "topic_prefix may contain only [A-Za-z0-9._-]"
_MSG_PAYLOAD = "max_payload_bytes must be a positive integer"
_MSG_PARTITIONS = "topic_partitions must be a positive integer"
_MSG_HEARTBEAT = "heartbeat_interval must be a positive number of seconds"


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
    heartbeat_interval: float = 5.0

    def __post_init__(self) -> None:
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
        interval = self.heartbeat_interval
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise ConfigError(_MSG_HEARTBEAT)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **explicit: Any) -> WorkerSettings:
        """Settings from explicit values (``None`` means "not given"), then ``BATON_*`` env, then defaults."""
        env = os.environ if env is None else env
        unknown = set(explicit) - set(ENV_NAMES)
        if unknown:
            raise TypeError(f"unknown worker settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, var in ENV_NAMES.items():
            if explicit.get(name) is not None:
                values[name] = explicit[name]
            elif env.get(var, "").strip():
                values[name] = _parse_env(name, env[var].strip())
        return cls(**values)

    def replace(self, **explicit: Any) -> WorkerSettings:
        """A copy with the given non-``None`` values replaced (validated again)."""
        return dataclasses.replace(self, **{k: v for k, v in explicit.items() if v is not None})

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
    "heartbeat_interval": _MSG_HEARTBEAT,
}


def _parse_env(name: str, raw: str) -> Any:
    """Convert a numeric env value; a value that does not parse fails with the option's own message."""
    if name not in _MESSAGES:
        return raw
    try:
        return float(raw) if name == "heartbeat_interval" else int(raw)
    except ValueError:
        raise ConfigError(_MESSAGES[name]) from None
