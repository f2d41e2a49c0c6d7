"""Envelopes on the wire (protocol/README.md): one JSON pass per message, checked against protocol/ vectors."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

VERSION = 1
RESULT_STATUSES = ("COMPLETED", "FAILED", "HEARTBEAT")
Headers = list[tuple[str, bytes]]


class Undecodable(ValueError):
    """A message that does not follow envelope v1; it goes to a DLT, never crashes a loop."""


@dataclass(frozen=True, slots=True)
class Result:
    job_id: str
    run_id: str
    step: str
    attempt: int
    status: str
    output: Any
    error: dict[str, Any] | None
    worker: dict[str, Any]
    started_at: str | None
    finished_at: str | None


def iso(ts: datetime) -> str:
    """RFC 3339 UTC with milliseconds and Z (isoformat, not strftime: this runs twice per job)."""
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.isoformat(timespec="milliseconds")[:-6] + "Z"


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in obj:
        raise Undecodable(f"missing field {key}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise Undecodable(f"field {key} has the wrong type")
    return value


def decode_result(raw: bytes | None) -> Result:
    if not raw:
        raise Undecodable("empty message")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Undecodable(f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise Undecodable("message is not a JSON object")
    if obj.get("v") != VERSION:
        raise Undecodable(f"unsupported envelope version {obj.get('v')!r}")
    status = _require(obj, "status", str)
    if status not in RESULT_STATUSES:
        raise Undecodable(f"unknown status {status!r}")
    attempt = _require(obj, "attempt", int)
    if attempt < 1:
        raise Undecodable("attempt must be >= 1")
    error = obj.get("error")
    if status == "FAILED" and not isinstance(error, dict):
        raise Undecodable("a FAILED result needs an error object")
    if error is not None and not isinstance(error, dict):
        raise Undecodable("error must be an object or null")
    worker = obj.get("worker")
    return Result(
        job_id=_require(obj, "job_id", str),
        run_id=_require(obj, "run_id", str),
        step=_require(obj, "step", str),
        attempt=attempt,
        status=status,
        output=obj.get("output"),
        error=error,
        worker=worker if isinstance(worker, dict) else {},
        started_at=obj.get("started_at") if isinstance(obj.get("started_at"), str) else None,
        finished_at=obj.get("finished_at") if isinstance(obj.get("finished_at"), str) else None,
    )


def encode_job(
    *,
    job_id: str,
    run_id: str,
    workflow_id: str,
    workflow_version: int,
    step: str,
    action: str,
    attempt: int,
    max_attempts: int,
    input: Any,
    deadline: datetime,
    timeout_ms: int,
    created_at: datetime,
) -> bytes:
    return orjson.dumps(
        {
            "v": VERSION,
            "job_id": job_id,
            "run_id": run_id,
            "workflow_id": workflow_id,
            "workflow_version": workflow_version,
            "step": step,
            "action": action,
            "attempt": attempt,
            "max_attempts": max_attempts,
            "input": input,
            "deadline": iso(deadline),
            "timeout_ms": timeout_ms,
            "created_at": iso(created_at),
        }
    )


def job_headers(job_id: str) -> Headers:
    return [("baton-job-id", job_id.encode())]


def dlt_headers(
    *,
    reason: str,
    error_type: str,
    message: str,
    stacktrace: str = "",
    original_topic: str,
    job_id: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    timestamp: int | None = None,
    group: str | None = None,
) -> Headers:
    """Spring Kafka's kafka_dlt-* names (ints and longs big-endian), so existing DLT tooling reads them."""
    headers: Headers = [
        ("kafka_dlt-original-topic", original_topic.encode()),
        ("kafka_dlt-exception-fqcn", error_type.encode()),
        ("kafka_dlt-exception-message", message.encode()),
        ("kafka_dlt-exception-stacktrace", stacktrace.encode()),
        ("baton-dlt-reason", reason.encode()),
    ]
    if partition is not None:
        headers.append(("kafka_dlt-original-partition", struct.pack(">i", partition)))
    if offset is not None:
        headers.append(("kafka_dlt-original-offset", struct.pack(">q", offset)))
    if timestamp is not None:
        headers.append(("kafka_dlt-original-timestamp", struct.pack(">q", timestamp)))
    if group is not None:
        headers.append(("kafka_dlt-original-consumer-group", group.encode()))
    if job_id:
        headers.append(("baton-job-id", job_id.encode()))
    return headers


def decode_worker_heartbeat(raw: bytes | None) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise Undecodable(f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise Undecodable("not a v1 worker heartbeat")
    _require(obj, "worker_id", str)
    return obj
