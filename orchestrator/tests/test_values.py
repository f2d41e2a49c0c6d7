"""Unit tests: the value rules of the boundary (bus/values.py) and the transient/permanent classifier."""

from __future__ import annotations

import orjson
import psycopg
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from baton_orchestrator.bus.values import MAX_DEPTH, InvalidValue, check_raw, check_value
from baton_orchestrator.engine.faults import is_transient


def _nested(depth: int) -> object:
    """`depth` arrays, one inside the other."""
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("a\x00b", "NUL"),
        ({"k\x00": 1}, "NUL"),
        ("bad \udcff", "lone surrogate"),
        ({"\ud800": 1}, "lone surrogate"),
        (2**63, "64-bit"),
        (-(2**63) - 1, "64-bit"),
        (float("inf"), "finite"),
        (float("nan"), "finite"),
        (_nested(MAX_DEPTH + 1), "nested deeper"),
        ({1, 2}, "not a JSON value"),
    ],
)
def test_check_value_refuses_what_cannot_be_stored_when_given_it(value: object, fragment: str) -> None:
    with pytest.raises(InvalidValue, match=fragment):
        check_value(value, "input")


def test_check_value_accepts_the_edges_of_every_rule() -> None:
    check_value({"deep": _nested(MAX_DEPTH - 1), "max": 2**63 - 1, "min": -(2**63), "text": "ok \u00e9 \U0001f600"})


@pytest.mark.parametrize(
    "raw",
    [
        b'{"x": "a\\u0000b"}',
        b"[" * 200 + b"]" * 200,
        b'{"n": 18446744073709551616}',  # orjson reads it as a lossy float: only the text shows it
        b'{"n": 9223372036854775808}',
    ],
)
def test_check_raw_finds_poison_when_the_decoded_value_hides_it(raw: bytes) -> None:
    with pytest.raises(InvalidValue):
        check_raw(raw, orjson.loads(raw))


def test_check_raw_lets_false_hints_pass_when_the_value_is_fine() -> None:
    for raw in (b'{"x": "\\\\u0000"}', b'{"s": "12345678901234567890123"}', b'{"f": 1234567890123456789012.5}'):
        check_raw(raw, orjson.loads(raw))


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection lost"),  # no SQLSTATE: the connection itself
        psycopg.errors.SerializationFailure(),
        psycopg.errors.DeadlockDetected(),
        psycopg.errors.AdminShutdown(),
        psycopg.errors.QueryCanceled(),
        KafkaConnectionError(),
        ConnectionRefusedError(),
        TimeoutError(),
    ],
)
def test_classifier_retries_when_the_failure_is_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.errors.UntranslatableCharacter(),
        psycopg.errors.InvalidTextRepresentation(),
        psycopg.errors.NumericValueOutOfRange(),
        psycopg.errors.ProgramLimitExceeded(),
        MessageSizeTooLargeError(),
        OverflowError("date value out of range"),
        RecursionError(),
        ValueError("bad"),
        AssertionError("bug"),
    ],
)
def test_classifier_isolates_when_the_data_is_refused(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_topics_are_created_with_the_configured_replication_when_set() -> None:
    from baton_orchestrator.bus.kafka import Topics
    from baton_orchestrator.settings import Settings

    topics = Topics(Settings(topic_replication_factor=3, topic_min_insync_replicas=2))
    assert topics._configs["min.insync.replicas"] == "2"
    assert "min.insync.replicas" not in Topics(Settings())._configs
