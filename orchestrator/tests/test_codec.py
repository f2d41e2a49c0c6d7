"""The orchestrator's codec against the shared protocol/ vectors and schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from baton_orchestrator.bus.codec import InvalidResult, Undecodable, decode_result, decode_worker_heartbeat, encode_job

PROTOCOL = Path(__file__).resolve().parents[2] / "protocol"
VECTORS = json.loads((PROTOCOL / "vectors" / "vectors.json").read_text())


def schema(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        json.loads((PROTOCOL / "schemas" / f"{name}.schema.json").read_text()),
        format_checker=jsonschema.FormatChecker(),
    )


@pytest.mark.parametrize("case", VECTORS["results"]["valid"], ids=lambda c: c["name"])
def test_valid_result_vector_decodes_with_expected_fields(case):
    result = decode_result(case["raw"].encode())
    expect = case["expect"]
    assert (result.job_id, result.run_id, result.step, result.attempt, result.status) == (
        expect["job_id"],
        expect["run_id"],
        expect["step"],
        expect["attempt"],
        expect["status"],
    )
    assert result.output == expect["output"] and result.error == expect["error"]


@pytest.mark.parametrize("case", VECTORS["results"]["invalid"], ids=lambda c: c["name"])
def test_invalid_result_vector_is_undecodable(case):
    with pytest.raises(Undecodable):
        decode_result(case["raw"].encode())


@pytest.mark.parametrize("case", VECTORS["worker_heartbeats"]["invalid"], ids=lambda c: c["name"])
def test_invalid_worker_heartbeat_is_undecodable(case):
    with pytest.raises(Undecodable):
        decode_worker_heartbeat(case["raw"].encode())


def test_encoded_job_matches_the_job_schema_and_round_trips_unicode():
    now = datetime(2026, 11, 23, 15, 0, 0, 123456, tzinfo=UTC)
    raw = encode_job(
        job_id="j1",
        run_id="r1",
        workflow_id="w",
        workflow_version=1,
        step="s",
        action="a.b",
        attempt=1,
        max_attempts=4,
        input={"note": "ünïcødé ✓"},
        deadline=now,
        timeout_ms=1000,
        created_at=now,
    )
    job = json.loads(raw)
    schema("job").validate(job)
    assert job["deadline"] == "2026-11-23T15:00:00.123Z" and job["input"]["note"] == "ünïcødé ✓"


@pytest.mark.parametrize("case", VECTORS["jobs"]["valid"], ids=lambda c: c["name"])
def test_job_vectors_are_valid_under_the_schema(case):
    schema("job").validate(json.loads(case["raw"]))


def test_job_producer_partitioner_places_keys_like_java_murmur2_and_memoises():
    import uuid

    from aiokafka.partitioner import DefaultPartitioner

    from baton_orchestrator.bus.kafka import _key_partitioner as mine

    reference = DefaultPartitioner()
    for n in (1, 6, 12):
        parts = list(range(n))
        for key in [str(uuid.uuid4()).encode() for _ in range(200)]:
            assert mine(key, parts, parts) == reference(key, parts, parts) == mine(key, parts, parts)


_RUN = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"


def _raw(output: bytes = b"1", **fields: object) -> bytes:
    head = {"v": 1, "job_id": "j1", "run_id": _RUN, "step": "s", "attempt": 1, "status": "COMPLETED", **fields}
    return json.dumps(head).encode()[:-1] + b', "output": ' + output + b"}"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (_raw(b'"a\\u0000b"'), "NUL"),
        (_raw(b'"bad \\udcff"'), "not valid JSON for Baton"),
        (_raw(b"[" * 200 + b"]" * 200), "nested deeper"),
        (_raw(b"1180591620717411303424"), "64-bit"),
        (_raw(finished_at="yesterday"), "finished_at"),
        (_raw(started_at="2030-01-01T00:00:00"), "time zone"),
        (_raw(attempt=2**31), "attempt"),
    ],
)
def test_a_result_that_names_its_attempt_but_cannot_be_stored_is_invalid_when_decoded(raw, fragment):
    with pytest.raises(InvalidResult, match=fragment) as refused:
        decode_result(raw)
    assert (refused.value.job_id, refused.value.run_id, refused.value.step) == ("j1", _RUN, "s")


@pytest.mark.parametrize(
    "raw",
    [
        _raw(run_id=f"urn:uuid:{_RUN}"),
        _raw(run_id=_RUN.replace("-", "")),
        _raw(job_id="j\u00001"),
        _raw(step="x" * 201),
        _raw(step=""),
    ],
)
def test_a_result_whose_ids_postgresql_would_refuse_is_undecodable(raw):
    with pytest.raises(Undecodable) as refused:
        decode_result(raw)
    assert not isinstance(refused.value, InvalidResult)


def test_an_uppercase_run_id_is_accepted_and_normalised():
    assert decode_result(_raw(run_id=_RUN.upper())).run_id == _RUN
