"""A worker started before Kafka answers waits for it instead of exiting."""

from __future__ import annotations

import asyncio
import time

import pytest

from baton import WorkerSettings
from baton._kafka import KafkaConnectionError, ensure_topics_retrying


async def test_start_waits_then_fails_clearly_when_kafka_never_answers():
    settings = WorkerSettings.from_env(bootstrap_servers="127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError, match=r"did not answer within 2s"):
        await asyncio.wait_for(ensure_topics_retrying(settings, ["t-never"], "w-test", patience=2.0), 30)
    assert 1.0 <= time.monotonic() - started < 20
