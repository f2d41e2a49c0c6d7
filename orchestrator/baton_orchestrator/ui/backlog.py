"""Per action, the backlog of its job topic: end offsets minus what each worker group has committed.

Computed at most once per CACHE_SECONDS per process, whatever the number of viewers, with a short-lived
admin client and an unsubscribed consumer (offsets only; neither joins a group)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ..core import Core
from ..store import filters

CACHE_SECONDS = 2.0
DEFAULT_GROUP = "workflow-workers"  # the SDKs' default group: who would consume an action nobody serves
_cache: dict[int, tuple[float, dict[str, Any]]] = {}


async def backlog(core: Core, workers: list[dict[str, Any]]) -> dict[str, Any]:
    """{"items": [{action, topic, workers, groups: [{group_id, lag}], lag, previous_lag}], "error"}."""
    now = time.monotonic()
    cached = _cache.get(id(core))
    if cached and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    previous = {i["action"]: i["lag"] for i in cached[1]["items"]} if cached else {}
    by_action: dict[str, set[str]] = {a: set() for a in await filters.known_actions(core.db)}
    serving: dict[str, int] = {}
    for w in workers:
        for action in w.get("actions") or []:
            by_action.setdefault(action, set()).add(w.get("group_id") or DEFAULT_GROUP)
            serving[action] = serving.get(action, 0) + 1
    try:
        lags = await asyncio.wait_for(_lags(core, by_action), timeout=5)
        error = None
    except Exception as exc:  # Kafka down: the page still shows the workers, and says why lag is missing
        lags, error = {}, f"consumer lag unavailable: {exc or type(exc).__name__}"
    items = [
        {
            "action": action,
            "topic": core.settings.job_topic(action),
            "workers": serving.get(action, 0),
            "groups": lags.get(action, []),
            "lag": sum(g["lag"] for g in lags.get(action, [])),
            "previous_lag": previous.get(action),
        }
        for action in sorted(by_action)
    ]
    result = {"items": items, "error": error}
    _cache[id(core)] = (now, result)
    return result


async def _lags(core: Core, by_action: dict[str, set[str]]) -> dict[str, list[dict[str, Any]]]:
    bootstrap = core.settings.kafka_bootstrap_servers
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await admin.start()
        topic_of = {core.settings.job_topic(action): action for action in by_action}
        described = await admin.describe_topics(list(topic_of)) if topic_of else []
        tps = {  # a topic not created yet (error code 3) has no backlog
            topic_of[t["topic"]]: [TopicPartition(t["topic"], p["partition"]) for p in t["partitions"]]
            for t in described
            if t["error_code"] == 0
        }
        flat = [tp for parts in tps.values() for tp in parts]
        start, end = await consumer.beginning_offsets(flat), await consumer.end_offsets(flat)
        wanted = {action: groups or {DEFAULT_GROUP} for action, groups in by_action.items()}
        committed = {
            g: await admin.list_consumer_group_offsets(g, partitions=flat) for g in set().union(*wanted.values())
        }
        out: dict[str, list[dict[str, Any]]] = {}
        for action, parts in tps.items():
            for group in sorted(wanted[action]):
                offsets = committed.get(group, {})
                lag = sum(end[tp] - max(_offset(offsets.get(tp)), start[tp]) for tp in parts)
                out.setdefault(action, []).append({"group_id": group, "lag": lag})
        return out
    finally:
        await consumer.stop()
        await admin.close()


def _offset(meta: Any) -> int:
    return meta.offset if meta is not None and meta.offset >= 0 else -1
