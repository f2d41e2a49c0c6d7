"""The codec against the shared vectors in protocol/: every SDK passes the same ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from baton.protocol import (
    Job,
    Result,
    Undecodable,
    WorkerInfo,
    decode_job,
    encode_presence,
    encode_result,
    format_time,
)

PROTOCOL = Path(__file__).resolve().parents[2] / "protocol"
VECTORS = json.loads((PROTOCOL / "vectors" / "vectors.json").read_text())
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((PROTOCOL / "schemas" / name).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=FORMATS)


RESULT_SCHEMA = _validator("result.schema.json")
PRESENCE_SCHEMA = _validator("worker-heartbeat.schema.json")


def _as_wire(job: Job) -> dict[str, Any]:
    wire = {
        "v": 1,
        "job_id": job.job_id,
        "run_id": job.run_id,
        "workflow_id": job.workflow_id,
        "workflow_version": job.workflow_version,
        "step": job.step,
        "action": job.action,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "input": job.input,
        "deadline": format_time(job.deadline),
        "created_at": format_time(job.created_at),
        **job.extra,
    }
    if job.timeout_ms is not None:
        wire["timeout_ms"] = job.timeout_ms
    return wire


@pytest.mark.parametrize("vector", VECTORS["jobs"]["valid"], ids=lambda v: v["name"])
def test_job_decodes_to_expected_fields_when_vector_is_valid(vector: dict[str, Any]) -> None:
    job = decode_job(vector["raw"].encode())
    assert _as_wire(job) == vector["expect"]


@pytest.mark.parametrize("vector", VECTORS["jobs"]["invalid"], ids=lambda v: v["name"])
def test_job_is_undecodable_when_vector_is_invalid(vector: dict[str, Any]) -> None:
    with pytest.raises(Undecodable) as caught:
        decode_job(vector["raw"].encode())
    assert caught.value.reason


def test_undecodable_keeps_job_id_when_the_record_names_one() -> None:
    raw = json.loads(VECTORS["jobs"]["valid"][0]["raw"]) | {"attempt": 0}
    with pytest.raises(Undecodable) as caught:
        decode_job(json.dumps(raw).encode())
    assert caught.value.job_id == raw["job_id"]


@pytest.mark.parametrize("vector", VECTORS["results"]["valid"], ids=lambda v: v["name"])
def test_result_encodes_like_vector_and_validates_when_fields_match(vector: dict[str, Any]) -> None:
    expect = vector["expect"]
    w = expect["worker"]
    result = Result(
        job_id=expect["job_id"],
        run_id=expect["run_id"],
        step=expect["step"],
        attempt=expect["attempt"],
        status=expect["status"],
        worker=WorkerInfo(w["id"], w["language"], w["sdk_version"]),
        started_at=expect["started_at"],
        finished_at=expect["finished_at"],
        output_json=json.dumps(expect["output"], ensure_ascii=False),
        error=expect["error"],
    )
    encoded = json.loads(encode_result(result))
    RESULT_SCHEMA.validate(encoded)
    known = {k: v for k, v in expect.items() if k in encoded}
    assert encoded == known


@pytest.mark.parametrize("vector", VECTORS["results"]["invalid"], ids=lambda v: v["name"])
def test_result_schema_rejects_invalid_result_vectors(vector: dict[str, Any]) -> None:
    # The SDK never decodes results; this checks the schema its encoder is validated against is strict.
    try:
        data = json.loads(vector["raw"])
    except ValueError:
        return
    assert not RESULT_SCHEMA.is_valid(data)


@pytest.mark.parametrize("vector", VECTORS["worker_heartbeats"]["valid"], ids=lambda v: v["name"])
def test_presence_encodes_like_vector_when_fields_match(vector: dict[str, Any]) -> None:
    e = vector["expect"]
    encoded = json.loads(
        encode_presence(
            WorkerInfo(e["worker_id"], e["language"], e["sdk_version"]),
            status=e["status"],
            actions=e["actions"],
            in_flight=e["in_flight"],
            details={k: e[k] for k in ("hostname", "pid", "group_id", "concurrency", "started_at")},
        )
    )
    PRESENCE_SCHEMA.validate(encoded)
    assert {k: v for k, v in encoded.items() if k != "sent_at"} == {k: v for k, v in e.items() if k != "sent_at"}


def test_result_output_is_spliced_verbatim_when_encoded() -> None:
    result = Result("j", "r", "s", 1, "COMPLETED", WorkerInfo("w", "python", "0.1.0"), None, None, '{"a":[1,"ü"]}')
    raw = encode_result(result)
    assert json.loads(raw)["output"] == {"a": [1, "ü"]}
    assert "ü".encode() in raw  # UTF-8, not \u escapes
