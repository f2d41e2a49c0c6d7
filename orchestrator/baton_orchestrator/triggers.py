"""Kafka triggers, the pure part: the definition, and how one record becomes (input, Idempotency-Key).

A record is refused (sent to `<topic>.DLT` with the reason) when its value is not JSON or breaks the
input rules of `bus/values.py`; anything else becomes one run, keyed so a redelivery replays it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .bus.values import InvalidValue, check_raw
from .settings import ACTION_PATTERN

TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"
KEY_PATH_PATTERN = r"^\$(\.[A-Za-z0-9_-]+)+$"
_PRINTABLE_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # what the Idempotency-Key header accepts


class KafkaTriggerSpec(BaseModel):
    """POST /triggers/kafka: start `workflow_id` for every record on `topic`."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, pattern=ACTION_PATTERN, description="Defaults to a generated id.")
    workflow_id: str = Field(pattern=ACTION_PATTERN)
    topic: str = Field(pattern=TOPIC_PATTERN)
    key_path: str | None = Field(
        None, pattern=KEY_PATH_PATTERN, description="Idempotency-Key from the value, e.g. '$.order_id'."
    )
    group_id: str | None = Field(None, pattern=ACTION_PATTERN, description="Consumer group (default per trigger).")
    start_from: Literal["earliest", "latest"] = Field(
        "latest", description="Where a group with no committed offset starts."
    )


@dataclass(frozen=True)
class Rejected:
    reason: str  # baton-dlt-reason
    error_type: str
    message: str


@dataclass(frozen=True)
class Accepted:
    input: Any
    key: str


def read_record(
    value: bytes | None, key: bytes | None, key_path: str | None, where: tuple[str, int, int]
) -> Accepted | Rejected:
    """The run a record asks for; `where` is (topic, partition, offset), the key of last resort."""
    if value is None:
        return Rejected("invalid_json", "InvalidJson", "the record has no value (a tombstone)")
    try:
        payload = orjson.loads(value)
        check_raw(value, payload, "record value")
    except orjson.JSONDecodeError as exc:
        return Rejected("invalid_json", "InvalidJson", f"the record value is not JSON: {exc}")
    except InvalidValue as exc:
        return Rejected("invalid_input", "InvalidValue", str(exc))
    idem = _from_path(payload, key_path) if key_path else None
    if idem is None and key is not None:
        try:
            idem = key.decode()
        except UnicodeDecodeError:
            return Rejected("invalid_key", "InvalidKey", "the record key is not UTF-8")
    if idem is None:
        idem = "kafka:{}:{}:{}".format(*where)
    if not _PRINTABLE_KEY.match(idem):
        return Rejected("invalid_key", "InvalidKey", "the Idempotency-Key must be 1-255 printable ASCII characters")
    return Accepted(payload, idem)


def _from_path(payload: Any, path: str) -> str | None:
    value = payload
    for part in path[2:].split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None  # only a string or an integer names an entity
    return str(value)


def dlt_topic(topic: str) -> str:
    return f"{topic}.DLT"
