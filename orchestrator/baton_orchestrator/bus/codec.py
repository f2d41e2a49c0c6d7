"""Envelopes on the wire (protocol/README.md): one JSON pass per message, checked against protocol/ vectors."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from .values import InvalidValue, check_raw

VERSION = 1
RESULT_STATUSES = ("COMPLETED", "FAILED", "HEARTBEAT")
Headers = list[tuple[str, bytes]]


class Undecodable(ValueError):
    """A message that does not follow envelope v1; it goes to a DLT, never crashes a loop."""


class InvalidResult(Undecodable):
    """A result that names its attempt but cannot be applied: it goes to the DLT and the attempt fails."""

    def __init__(self, message: str, job_id: str, run_id: str, step: str) -> None:
        super().__init__(message)
        self.job_id, self.run_id, self.step = job_id, run_id, step


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


UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
_MAX_NAME = 200
_MAX_ATTEMPT = 2**31 - 1


def decode_result(raw: bytes | None) -> Result:
    """Decode and check a result. Undecodable: it names no attempt we could fail (DLT only).
    InvalidResult: it names its attempt but holds what cannot be stored (DLT, and the attempt fails)."""
    if not raw:
        raise Undecodable("empty message")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        _raise_if_identifiable(raw, f"not valid JSON for Baton: {exc}")
        raise Undecodable(f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise Undecodable("message is not a JSON object")
    if obj.get("v") != VERSION:
        raise Undecodable(f"unsupported envelope version {obj.get('v')!r}")
    status = _require(obj, "status", str)
    if status not in RESULT_STATUSES:
        raise Undecodable(f"unknown status {status!r}")
    job_id, run_id, step = _identity(obj)
    try:
        result = _result(obj, status, job_id, run_id, step)
        check_raw(raw, obj, "the result")
    except (Undecodable, InvalidValue) as exc:
        raise InvalidResult(str(exc), job_id, run_id, step) from None
    return result


def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    job_id = _require(obj, "job_id", str)
    run_id = _require(obj, "run_id", str)
    step = _require(obj, "step", str)
    if not _JOB_ID.match(job_id):
        raise Undecodable("job_id must be 1-200 of [A-Za-z0-9._:-]")
    if not UUID_RE.match(run_id):
        raise Undecodable("run_id is not a UUID in its canonical form")
    if not 0 < len(step) <= _MAX_NAME or "\x00" in step or not _utf8(step):
        raise Undecodable("step must be a name of 1-200 characters")
    return job_id, run_id.lower(), step


def _result(obj: dict[str, Any], status: str, job_id: str, run_id: str, step: str) -> Result:
    attempt = _require(obj, "attempt", int)
    if not 1 <= attempt <= _MAX_ATTEMPT:
        raise Undecodable("attempt must be between 1 and 2^31-1")
    error = obj.get("error")
    if status == "FAILED" and not isinstance(error, dict):
        raise Undecodable("a FAILED result needs an error object")
    if error is not None and not isinstance(error, dict):
        raise Undecodable("error must be an object or null")
    worker = obj.get("worker")
    return Result(
        job_id=job_id,
        run_id=run_id,
        step=step,
        attempt=attempt,
        status=status,
        output=obj.get("output"),
        error=error,
        worker=worker if isinstance(worker, dict) else {},
        started_at=_timestamp(obj, "started_at"),
        finished_at=_timestamp(obj, "finished_at"),
    )


def _timestamp(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    # PostgreSQL casts these to timestamptz; one it refuses would fail the whole batch.
    if not isinstance(value, str) or len(value) > 40:
        raise Undecodable(f"{key} is not an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Undecodable(f"{key} is not an RFC 3339 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise Undecodable(f"{key} has no time zone: {value!r}")
    return value


def _raise_if_identifiable(raw: bytes, why: str) -> None:
    # orjson refuses lone surrogates that the standard library still reads: enough to name the attempt.
    try:
        obj = json.loads(raw)
        if isinstance(obj, dict) and obj.get("v") == VERSION:
            job_id, run_id, step = _identity(obj)
        else:
            return
    except (ValueError, RecursionError):
        return
    raise InvalidResult(why, job_id, run_id, step)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
        ("kafka_dlt-exception-message", cut_text(message, 4096)),
        ("kafka_dlt-exception-stacktrace", cut_text(stacktrace, 16384)),
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


def cut_text(text: str, limit: int) -> bytes:
    """UTF-8 of `text` (lone surrogates replaced), at most `limit` bytes: headers count against the record size."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    marker = f" …[cut {len(data) - limit} bytes]".encode()
    return data[: limit - len(marker)].decode("utf-8", "ignore").encode() + marker


def decode_worker_heartbeat(raw: bytes | None) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise Undecodable(f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise Undecodable("not a v1 worker heartbeat")
    _require(obj, "worker_id", str)
    return obj
