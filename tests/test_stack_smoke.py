"""The native stack answers: Kafka round trip, a PostgreSQL query, Redis SET/GET."""

from __future__ import annotations

import asyncio

import psycopg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def test_kafka_round_trip_when_topic_is_fresh(services, unique):
    topic = f"t-{unique}-smoke"
    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        producer = AIOKafkaProducer(bootstrap_servers=services.kafka, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            meta = await producer.send_and_wait(topic, b"hello", key=b"k", headers=[("h", b"v")])
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=services.kafka,
            group_id=f"t-{unique}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=20)
        finally:
            await consumer.stop()
        assert (record.value, record.key, record.offset) == (b"hello", b"k", meta.offset)
        assert record.headers == (("h", b"v"),)
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def test_postgres_answers_a_query(services):
    async with await psycopg.AsyncConnection.connect(services.database_url) as conn:
        cur = await conn.execute("SELECT current_database(), 1 + 1")
        expected_db = services.database_url.rsplit("/", 1)[-1].split("?", 1)[0]
        assert await cur.fetchone() == (expected_db, 2)


async def test_redis_set_then_get(services, unique):
    client = aioredis.from_url(services.redis_url)
    try:
        await client.set(f"t-{unique}", "v", ex=30)
        assert await client.get(f"t-{unique}") == b"v"
    finally:
        await client.delete(f"t-{unique}")
        await client.aclose()
