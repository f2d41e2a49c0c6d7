"""Wire format, envelope v1 (``protocol/README.md``): decode jobs, encode results and presence heartbeats.

The SDK keeps its own codec (the orchestrator has another); both are checked against the shared vectors
in ``protocol/vectors/vectors.json`` so they cannot drift.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

__all__ = [
    "ENVELOPE_VERSION",
    "Job",
    "Result",
    "Undecodable",
    "WorkerInfo",
    "decode_job",
    "encode_json",
    "encode_presence",
    "encode_result",
    "format_time",
    "parse_time",
]

ENVELOPE_VERSION: Final = 1
Status = Literal["COMPLETED", "FAILED", "HEARTBEAT"]

_ACTION = re.compile(r"[A-Za-z0-9._-]{1,200}")
_KNOWN_JOB_FIELDS = frozenset(
    (
        "v",
        "job_id",
        "run_id",
        "workflow_id",
        "workflow_version",
        "step",
        "action",
        "attempt",
        "max_attempts",
        "input",
        "deadline",
        "timeout_ms",
        "created_at",
    )
)


class Undecodable(Exception):
    """A record that is not a valid v1 job. ``job_id`` is set when the record still names one."""

    def __init__(self, reason: str, job_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class Job:
    """A decoded job: one attempt of one workflow step."""

    job_id: str
    run_id: str
    workflow_id: str
    workflow_version: int
    step: str
    action: str
    attempt: int
    max_attempts: int
    input: Any
    deadline: datetime
    created_at: datetime
    timeout_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields, kept for forward compatibility


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """Who produced a result: ``worker`` in results, the identity in presence heartbeats."""

    id: str
    language: str
    sdk_version: str


@dataclass(frozen=True, slots=True)
class Result:
    """One result record. ``output_json`` is the already-encoded output, spliced in as is."""

    job_id: str
    run_id: str
    step: str
    attempt: int
    status: Status
    worker: WorkerInfo
    started_at: str | None
    finished_at: str | None
    output_json: str = "null"
    error: dict[str, Any] | None = None


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, as every timestamp on the wire."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; raise ``ValueError`` when it is not one."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("timestamp without a UTC offset")
    return moment.astimezone(UTC)


def encode_json(value: Any) -> str:
    """Compact UTF-8 JSON; ``ValueError``/``TypeError`` when ``value`` is not plain JSON (NaN is not)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def decode_job(raw: bytes | None) -> Job:
    """Decode a job record's value, or raise :class:`Undecodable` saying why."""
    if not raw:
        raise Undecodable("empty payload")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Undecodable(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Undecodable("not a JSON object")
    job_id = data.get("job_id") if isinstance(data.get("job_id"), str) else None
    try:
        return _job_from(data)
    except Undecodable as exc:
        raise Undecodable(exc.reason, job_id or None) from None


def _job_from(data: dict[str, Any]) -> Job:
    if "v" not in data:
        raise Undecodable("missing field v")
    if not _is_int(data["v"]) or data["v"] != ENVELOPE_VERSION:
        raise Undecodable(f"unsupported envelope version {data['v']!r}")
    timeout_ms = data.get("timeout_ms")
    if timeout_ms is not None and not (_is_int(timeout_ms) and timeout_ms >= 1):
        raise Undecodable("timeout_ms must be a positive integer")
    if "input" not in data:
        raise Undecodable("missing field input")
    action = _text(data, "action")
    if not _ACTION.fullmatch(action):
        raise Undecodable(f"invalid action {action!r}")
    return Job(
        job_id=_text(data, "job_id", 200),
        run_id=_text(data, "run_id", 200),
        workflow_id=_text(data, "workflow_id"),
        workflow_version=_positive(data, "workflow_version"),
        step=_text(data, "step"),
        action=action,
        attempt=_positive(data, "attempt"),
        max_attempts=_positive(data, "max_attempts"),
        input=data["input"],
        deadline=_time(data, "deadline"),
        created_at=_time(data, "created_at"),
        timeout_ms=timeout_ms,
        extra={k: v for k, v in data.items() if k not in _KNOWN_JOB_FIELDS},
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _required(data: dict[str, Any], name: str) -> Any:
    if name not in data:
        raise Undecodable(f"missing field {name}")
    return data[name]


def _text(data: dict[str, Any], name: str, max_length: int | None = None) -> str:
    value = _required(data, name)
    if not isinstance(value, str) or not value or (max_length is not None and len(value) > max_length):
        raise Undecodable(f"field {name} must be a non-empty string")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:  # a "\udcff" escape: no result naming this job could be encoded
            raise Undecodable(f"field {name} contains a lone surrogate") from None
    return value


def _positive(data: dict[str, Any], name: str) -> int:
    value = _required(data, name)
    if not _is_int(value) or value < 1:
        raise Undecodable(f"field {name} must be an integer >= 1")
    return int(value)


def _time(data: dict[str, Any], name: str) -> datetime:
    value = _required(data, name)
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return parse_time(value)
    except ValueError:
        raise Undecodable(f"field {name} must be an RFC 3339 timestamp") from None


def encode_result(result: Result) -> bytes:
    """Encode a result. The output is spliced in already encoded, so a payload is serialised once."""
    head = encode_json(
        {
            "v": ENVELOPE_VERSION,
            "job_id": result.job_id,
            "run_id": result.run_id,
            "step": result.step,
            "attempt": result.attempt,
            "status": result.status,
            "error": result.error,
            "worker": _worker(result.worker),
            "started_at": result.started_at,
            "finished_at": result.finished_at,
        }
    )
    return f'{head[:-1]},"output":{result.output_json}}}'.encode()


def encode_presence(
    worker: WorkerInfo, *, status: str, actions: list[str], in_flight: int, details: dict[str, Any]
) -> bytes:
    """Encode a presence heartbeat for the workers topic; ``details`` adds the optional fields."""
    return encode_json(
        {
            "v": ENVELOPE_VERSION,
            "worker_id": worker.id,
            "language": worker.language,
            "sdk_version": worker.sdk_version,
            "actions": actions,
            "in_flight": in_flight,
            "status": status,
            "sent_at": format_time(datetime.now(UTC)),
            **details,
        }
    ).encode()


def _worker(info: WorkerInfo) -> dict[str, str]:
    return {"id": info.id, "language": info.language, "sdk_version": info.sdk_version}
