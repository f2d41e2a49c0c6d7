"""Options, env fallbacks and the exact validation messages of docs/sdk-contract.md."""

from __future__ import annotations

import asyncio

import pytest

from baton import BatonError, ConfigError, IdleTimeout, Worker, WorkerSettings, WorkerStateError

ENV_VARS = (
    "BATON_KAFKA_BOOTSTRAP_SERVERS",
    "BATON_WORKER_GROUP",
    "BATON_WORKER_CONCURRENCY",
    "BATON_TOPIC_PREFIX",
    "BATON_MAX_PAYLOAD_BYTES",
    "BATON_TOPIC_PARTITIONS",
    "BATON_WORKER_HEARTBEAT_INTERVAL",
    "BATON_WORKER_PRESENCE_INTERVAL",
    "BATON_WORKER_DRAIN_TIMEOUT",
    "BATON_WORKER_DEADLINE_GRACE",
    "BATON_WORKER_MAX_ABANDONED",
    "BATON_TOPIC_REPLICATION_FACTOR",
    "BATON_TOPIC_MIN_INSYNC_REPLICAS",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_defaults_apply_when_nothing_is_set(clean_env: pytest.MonkeyPatch) -> None:
    s = Worker().settings
    assert (s.bootstrap_servers, s.group_id, s.concurrency, s.topic_prefix) == (
        "localhost:9092",
        "workflow-workers",
        8,
        "workflow-",
    )
    assert (s.max_payload_bytes, s.topic_partitions, s.presence_interval) == (1_048_576, 6, 5.0)
    assert (s.drain_timeout, s.deadline_grace, s.max_abandoned) == (30.0, 10.0, 8)
    assert (s.topic_replication_factor, s.topic_min_insync_replicas) == (1, None)
    assert (s.jobs_topic("a"), s.results_topic, s.dead_letter_topic, s.workers_topic) == (
        "workflow-jobs.a",
        "workflow-results",
        "workflow-jobs.DLT",
        "workflow-workers",
    )


def test_env_is_used_when_options_are_not_given(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BATON_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9093")
    clean_env.setenv("BATON_WORKER_GROUP", "g")
    clean_env.setenv("BATON_WORKER_CONCURRENCY", "3")
    clean_env.setenv("BATON_TOPIC_PREFIX", "x-")
    clean_env.setenv("BATON_MAX_PAYLOAD_BYTES", "100")
    clean_env.setenv("BATON_TOPIC_PARTITIONS", "2")
    clean_env.setenv("BATON_WORKER_PRESENCE_INTERVAL", "0.5")
    clean_env.setenv("BATON_WORKER_DRAIN_TIMEOUT", "7.5")
    clean_env.setenv("BATON_WORKER_DEADLINE_GRACE", "0")
    clean_env.setenv("BATON_WORKER_MAX_ABANDONED", "4")
    clean_env.setenv("BATON_TOPIC_REPLICATION_FACTOR", "3")
    clean_env.setenv("BATON_TOPIC_MIN_INSYNC_REPLICAS", "2")
    assert Worker().settings == WorkerSettings(
        "k1:9092,k2:9093",
        "g",
        3,
        "x-",
        100,
        2,
        0.5,
        drain_timeout=7.5,
        deadline_grace=0.0,
        max_abandoned=4,
        topic_replication_factor=3,
        topic_min_insync_replicas=2,
    )


def test_max_abandoned_follows_concurrency_when_not_set(clean_env: pytest.MonkeyPatch) -> None:
    assert Worker(concurrency=3).settings.max_abandoned == 3
    assert WorkerSettings(concurrency=5, max_abandoned=0).max_abandoned == 0


def test_old_heartbeat_interval_name_still_works_with_one_warning_when_used(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setattr("baton.config._WARNED", set())
    clean_env.setenv("BATON_WORKER_HEARTBEAT_INTERVAL", "2")
    with pytest.warns(DeprecationWarning, match="BATON_WORKER_PRESENCE_INTERVAL") as caught:
        assert Worker().settings.presence_interval == 2.0
        assert Worker().settings.presence_interval == 2.0
    assert len(caught) == 1
    with pytest.warns(DeprecationWarning, match="presence_interval"):
        assert WorkerSettings(heartbeat_interval=3).presence_interval == 3.0
    clean_env.setenv("BATON_WORKER_PRESENCE_INTERVAL", "4")
    assert Worker().settings.presence_interval == 4.0  # the new name wins


def test_explicit_options_win_when_env_is_set(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BATON_WORKER_CONCURRENCY", "3")
    clean_env.setenv("BATON_WORKER_GROUP", "from-env")
    w = Worker("h:1", group_id="mine", concurrency=5, topic_prefix="p.")
    assert (w.settings.bootstrap_servers, w.settings.group_id, w.settings.concurrency) == ("h:1", "mine", 5)
    assert w.settings.topic_prefix == "p."


def test_settings_object_is_used_and_explicit_options_override_it(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BATON_WORKER_GROUP", "from-env")
    w = Worker(concurrency=2, settings=WorkerSettings(group_id="from-settings", topic_partitions=1))
    assert (w.settings.group_id, w.settings.concurrency, w.settings.topic_partitions) == ("from-settings", 2, 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bootstrap_servers": ""}, "bootstrap_servers must be a non-empty host:port list"),
        ({"bootstrap_servers": "localhost"}, "bootstrap_servers must be a non-empty host:port list"),
        ({"bootstrap_servers": "a:1,,b:2"}, "bootstrap_servers must be a non-empty host:port list"),
        ({"bootstrap_servers": "a:99999"}, "bootstrap_servers must be a non-empty host:port list"),
        ({"group_id": " "}, "group_id must be a non-empty string"),
        ({"concurrency": 0}, "concurrency must be an integer between 1 and 1000"),
        ({"concurrency": 1001}, "concurrency must be an integer between 1 and 1000"),
        ({"concurrency": 2.5}, "concurrency must be an integer between 1 and 1000"),
        ({"concurrency": True}, "concurrency must be an integer between 1 and 1000"),
        ({"topic_prefix": "a b"}, "topic_prefix may contain only [A-Za-z0-9._-]"),
        ({"presence_interval": 0}, "presence_interval must be a positive number of seconds"),
        ({"drain_timeout": -1}, "drain_timeout must be a non-negative number of seconds"),
        ({"deadline_grace": "1"}, "deadline_grace must be a non-negative number of seconds"),
        ({"max_abandoned": -1}, "max_abandoned must be a non-negative integer"),
        ({"topic_replication_factor": 0}, "topic_replication_factor must be a positive integer"),
        ({"topic_min_insync_replicas": 0}, "topic_min_insync_replicas must be a positive integer"),
    ],
)
def test_constructor_rejects_option_with_exact_message_when_invalid(
    clean_env: pytest.MonkeyPatch, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings(**options)  # type: ignore[arg-type]
    assert str(caught.value) == message
    assert caught.value.code == "BATON_CONFIG"


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("BATON_WORKER_CONCURRENCY", "many", "concurrency must be an integer between 1 and 1000"),
        ("BATON_WORKER_CONCURRENCY", "0", "concurrency must be an integer between 1 and 1000"),
        ("BATON_MAX_PAYLOAD_BYTES", "-1", "max_payload_bytes must be a positive integer"),
        ("BATON_TOPIC_PARTITIONS", "x", "topic_partitions must be a positive integer"),
        ("BATON_TOPIC_PREFIX", "bad/prefix", "topic_prefix may contain only [A-Za-z0-9._-]"),
        ("BATON_KAFKA_BOOTSTRAP_SERVERS", "no-port", "bootstrap_servers must be a non-empty host:port list"),
        ("BATON_WORKER_DRAIN_TIMEOUT", "soon", "drain_timeout must be a non-negative number of seconds"),
        ("BATON_WORKER_MAX_ABANDONED", "1.5", "max_abandoned must be a non-negative integer"),
    ],
)
def test_env_value_is_rejected_with_exact_message_when_invalid(
    clean_env: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    clean_env.setenv(var, value)
    with pytest.raises(ConfigError, match=f"^{message.replace('[', '.').replace(']', '.')}$"):
        Worker()


@pytest.mark.parametrize("name", ["", "DLT", "has space", "a/b", "x" * 201, 7])
def test_register_rejects_action_name_when_invalid(clean_env: pytest.MonkeyPatch, name: object) -> None:
    with pytest.raises(ConfigError) as caught:
        Worker().register(name, lambda p: p)  # type: ignore[arg-type]
    assert str(caught.value) == f"invalid action name {name!r}: use 1-200 of [A-Za-z0-9._-], not 'DLT'"


def test_register_rejects_action_when_already_registered(clean_env: pytest.MonkeyPatch) -> None:
    worker = Worker()
    worker.register("step1", lambda p: p)
    with pytest.raises(ConfigError, match=r"^action 'step1' is already registered$"):
        worker.register("step1", lambda p: p)


def test_register_rejects_handler_when_not_callable(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"^handler for 'step1' must be callable$"):
        Worker().register("step1", "not a function")  # type: ignore[arg-type]


def test_decorator_registers_and_returns_function_unchanged(clean_env: pytest.MonkeyPatch) -> None:
    worker = Worker()

    @worker.action("a.b-c_1")
    def handler(payload: object) -> object:
        return payload

    assert worker.actions == ["a.b-c_1"]
    assert handler(1) == 1


async def test_run_fails_with_config_error_when_no_action_is_registered(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="register at least one action"):
        await Worker().run_until_idle(timeout=1)


async def test_second_start_and_late_register_raise_worker_state_error_when_running(
    clean_env: pytest.MonkeyPatch,
) -> None:
    worker = Worker("127.0.0.1:1")
    worker.register("a", lambda p: p)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0)  # running (still waiting for Kafka)
    try:
        with pytest.raises(WorkerStateError, match="already running") as caught:
            await worker.run()
        assert caught.value.code == "BATON_WORKER_STATE" and isinstance(caught.value, BatonError)
        with pytest.raises(WorkerStateError, match="before the worker starts"):
            worker.register("b", lambda p: p)
    finally:
        await worker.stop(0)
        await asyncio.wait_for(task, 10)


def test_idle_timeout_is_a_baton_error_and_a_timeout_error() -> None:
    assert IdleTimeout.code == "BATON_IDLE_TIMEOUT"
    assert issubclass(IdleTimeout, BatonError) and issubclass(IdleTimeout, TimeoutError)
