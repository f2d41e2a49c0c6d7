"""A worker started before Kafka answers waits for it instead of exiting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from baton import WorkerSettings
from baton._kafka import KafkaConnectionError, ensure_topics, ensure_topics_retrying


async def test_start_waits_then_fails_clearly_when_kafka_never_answers():
    settings = WorkerSettings.from_env(bootstrap_servers="127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError, match=r"did not answer within 2s"):
        await asyncio.wait_for(ensure_topics_retrying(settings, ["t-never"], "w-test", patience=2.0), 30)
    assert 1.0 <= time.monotonic() - started < 20


async def test_created_topics_get_the_configured_replication_and_min_isr_when_missing(kit: Any) -> None:
    settings = kit.settings(topic_replication_factor=1, topic_min_insync_replicas=1)
    await ensure_topics(settings, [f"{kit.prefix}results"], "w-test")
    kit.created.append(f"{kit.prefix}results")
    [response] = await kit.admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, f"{kit.prefix}results")])
    configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
    assert configs["min.insync.replicas"] == "1"
    [topic] = await kit.admin.describe_topics([f"{kit.prefix}results"])
    assert {len(p["replicas"]) for p in topic["partitions"]} == {1} and len(topic["partitions"]) == 2
