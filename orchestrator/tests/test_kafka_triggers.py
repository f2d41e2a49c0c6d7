"""Kafka triggers (R2.7): one run per record key, bad records on `<topic>.DLT` with a reason, offsets
committed once the runs exist, definitions checked by the API."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from baton_orchestrator.triggers import Accepted, Rejected, read_record

from .conftest import eventually, make_settings
from .test_schedules import runs_by_key

ONE = {"id": "orders", "steps": [{"name": "only", "action": "k.one"}]}
WHERE = ("t", 1, 42)


def test_the_key_comes_from_the_path_then_the_record_key_then_the_coordinates_when_missing():
    by_path = read_record(b'{"order_id": 7}', b"rk", "$.order_id", WHERE)
    assert by_path == Accepted({"order_id": 7}, "7")
    assert read_record(b'{"other": 1}', b"rk", "$.order_id", WHERE) == Accepted({"other": 1}, "rk")
    assert read_record(b"[1]", None, None, WHERE) == Accepted([1], "kafka:t:1:42")
    nested = read_record(b'{"a": {"b": "x-1"}}', None, "$.a.b", WHERE)
    assert isinstance(nested, Accepted) and nested.key == "x-1"


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (b"not json", None, "invalid_json"),
        (None, b"k", "invalid_json"),
        (b'{"s": "nul \\u0000"}', None, "invalid_input"),
        (b'{"n": 123456789012345678901234}', None, "invalid_input"),
        (b"{}", b"\xff\xfe", "invalid_key"),
        (b"{}", b"has space", "invalid_key"),
    ],
)
def test_a_record_is_refused_with_a_reason_when_it_cannot_start_a_run(value, key, reason):
    got = read_record(value, key, None, WHERE)
    assert isinstance(got, Rejected) and got.reason == reason, got


async def test_the_api_refuses_a_trigger_when_its_definition_is_invalid(client):
    await client.define(ONE)
    for body, code in [
        ({"workflow_id": "ghost", "topic": "x"}, "unknown_workflow"),
        ({"workflow_id": "orders", "topic": "x", "key_path": "order_id"}, "validation_error"),
        ({"workflow_id": "orders", "topic": "x", "start_from": "middle"}, "validation_error"),
        ({"workflow_id": "orders", "topic": "bad topic"}, "validation_error"),
    ]:
        resp = await client.http.post("/triggers/kafka", json=body)
        assert resp.status_code == 422 and resp.json()["error"]["code"] == code, (body, resp.text)


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key, partition=0)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    got: list[Any] = []
    try:

        async def enough() -> bool:
            polled = await consumer.getmany(timeout_ms=200)
            got.extend(r for rs in polled.values() for r in rs)
            return len(got) >= n

        await eventually(enough, timeout=20)
    finally:
        await consumer.stop()
    return got


async def test_duplicates_start_one_run_per_key_and_bad_records_go_to_the_dlt_when_fed_by_a_producer(
    start_app, services, unique
):
    s = make_settings(services, unique, kafka_trigger_poll_seconds=0.2)
    client = await start_app(s=s)
    await client.define(ONE)
    topic, group = f"{s.topic_prefix}orders", f"t-{unique}-orders"
    await client.app.state.core.topics.ensure([topic])  # before the producer: no broker auto-creation
    resp = await client.http.post(
        "/triggers/kafka",
        json={"id": "o", "workflow_id": "orders", "topic": topic, "key_path": "$.order_id",
              "group_id": group, "start_from": "earliest"},
    )  # fmt: skip
    assert resp.status_code == 201 and resp.json()["dlt_topic"] == f"{topic}.DLT", resp.text
    order = [orjson.dumps({"order_id": i, "total": i * 10}) for i in range(3)]
    records = [(None, order[0]), (None, order[1]), (None, order[0]), (b"rk-9", b'{"x": 1}'), (None, b"{oops"),
               (None, order[2]), (b"rk-9", b'{"x": 1}'), (None, order[1]), (None, b'{"s": "\\u0000"}'),
               (None, b'{"y": 2}')]  # fmt: skip
    await produce(s.kafka_bootstrap_servers, topic, records)

    async def five_runs() -> dict[str, int] | None:
        keys = await runs_by_key(s)
        return keys if len(keys) == 5 else None

    keys = await eventually(five_runs, timeout=30)
    assert keys == {"0": 1, "1": 1, "2": 1, "rk-9": 1, f"kafka:{topic}:0:9": 1}
    dead = await read_all(s.kafka_bootstrap_servers, f"{topic}.DLT", 2)
    reasons = {dict(r.headers)["baton-dlt-reason"]: r.value for r in dead}
    assert reasons == {b"invalid_json": b"{oops", b"invalid_input": b'{"s": "\\u0000"}'}
    assert {dict(r.headers)["kafka_dlt-original-topic"] for r in dead} == {topic.encode()}

    async def committed_to_the_end() -> bool:
        return await committed(s, group, topic) == len(records)

    await eventually(committed_to_the_end, timeout=15)
    assert (await client.http.delete("/triggers/kafka/o")).status_code == 204
    assert (await client.http.get("/triggers/kafka/o")).status_code == 404


async def test_offsets_stay_uncommitted_until_the_run_is_durable_when_postgresql_refuses_it(
    start_app, services, unique, caplog
):
    s = make_settings(services, unique, kafka_trigger_poll_seconds=0.2)
    client = await start_app(s=s)
    await client.define(ONE)
    topic, group = f"{s.topic_prefix}late", f"t-{unique}-late"
    await client.app.state.core.topics.ensure([topic])
    # The runs table is away (this test's own schema): every trigger fails like a PostgreSQL outage would.
    await sql(s, "ALTER TABLE runs RENAME TO runs_away")
    body = {"id": "late", "workflow_id": "orders", "topic": topic, "group_id": group, "start_from": "earliest"}
    assert (await client.http.post("/triggers/kafka", json=body)).status_code == 201
    await produce(s.kafka_bootstrap_servers, topic, [(b"k-1", b'{"n": 1}')])

    async def crashed() -> bool:
        return any("Kafka trigger late crashed" in r.getMessage() for r in caplog.records)

    await eventually(crashed, timeout=20)
    assert await committed(s, group, topic) is None
    await sql(s, "ALTER TABLE runs_away RENAME TO runs")

    async def one_run() -> bool:
        return await runs_by_key(s) == {"k-1": 1}

    await eventually(one_run, timeout=20)  # redelivered to the restarted consumer

    async def committed_after_the_run() -> bool:
        return await committed(s, group, topic) == 1

    await eventually(committed_after_the_run, timeout=15)


async def sql(s: Any, statement: str) -> None:
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        await conn.execute(f'SET search_path = "{s.database_schema}"')
        await conn.execute(statement)


async def committed(s: Any, group: str, topic: str) -> int | None:
    probe = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, group_id=group)
    await probe.start()
    try:
        offset: int | None = await probe.committed(TopicPartition(topic, 0))
        return offset
    finally:
        await probe.stop()


async def test_a_deleted_trigger_stops_consuming_when_the_engine_polls_definitions(start_app, services, unique):
    s = make_settings(services, unique, kafka_trigger_poll_seconds=0.2)
    client = await start_app(s=s)
    await client.define(ONE)
    topic, group = f"{s.topic_prefix}gone", f"t-{unique}-gone"
    body = {"id": "gone", "workflow_id": "orders", "topic": topic, "group_id": group, "start_from": "earliest"}
    assert (await client.http.post("/triggers/kafka", json=body)).status_code == 201
    assert [t["id"] for t in (await client.http.get("/triggers/kafka")).json()["items"]] == ["gone"]
    assert (await client.http.post("/triggers/kafka", json=body)).status_code == 409

    async def state_is(wanted: str) -> bool:
        return await group_state(s.kafka_bootstrap_servers, group) == wanted

    await eventually(lambda: state_is("Stable"), timeout=20)
    assert (await client.http.delete("/triggers/kafka/gone")).status_code == 204
    await eventually(lambda: state_is("Empty"), timeout=20)


async def group_state(bootstrap: str, group: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
        state: str = described[0].groups[0][2]
        return state
    finally:
        await admin.close()
