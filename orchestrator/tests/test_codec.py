"""The orchestrator's codec against the shared protocol/ vectors and schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from baton_orchestrator.bus.codec import Undecodable, decode_result, decode_worker_heartbeat, encode_job

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
