"""Options, env fallbacks and the exact validation messages of docs/sdk-contract.md."""

from __future__ import annotations

import pytest

from baton import ConfigError, Worker, WorkerSettings

ENV_VARS = (
    "BATON_KAFKA_BOOTSTRAP_SERVERS",
    "BATON_WORKER_GROUP",
    "BATON_WORKER_CONCURRENCY",
    "BATON_TOPIC_PREFIX",
    "BATON_MAX_PAYLOAD_BYTES",
    "BATON_TOPIC_PARTITIONS",
    "BATON_WORKER_HEARTBEAT_INTERVAL",
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
    assert (s.max_payload_bytes, s.topic_partitions, s.heartbeat_interval) == (1_048_576, 6, 5.0)
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
    clean_env.setenv("BATON_WORKER_HEARTBEAT_INTERVAL", "0.5")
    assert Worker().settings == WorkerSettings("k1:9092,k2:9093", "g", 3, "x-", 100, 2, 0.5)


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
    ],
)
def test_constructor_rejects_option_with_exact_message_when_invalid(
    clean_env: pytest.MonkeyPatch, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Worker(**options)  # type: ignore[arg-type]
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
