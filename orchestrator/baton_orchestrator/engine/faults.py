"""Transient or permanent: what a failure to apply a batch says about retrying it.

Transient failures (a service unreachable, a serialization failure or deadlock, an operator shutting
PostgreSQL down) pass by themselves: retrying the same batch is right. Anything else is the data being
refused (a value PostgreSQL cannot store, a number that overflows, a bug met by one record), and the
same batch would fail forever: the loop has to find the record and set it aside.
"""

from __future__ import annotations

import asyncio

import psycopg
from aiokafka.errors import KafkaError

# SQLSTATE classes that are about the server or the connection, not the statement's data:
# 08 connection, 40 transaction rollback (serialization, deadlock), 53 insufficient resources,
# 55 object not in prerequisite state (lock not available), 57 operator intervention (shutdown,
# statement timeout), 58 system error, XX internal error.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "55", "57", "58", "XX"})


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        # No SQLSTATE: the client lost or could not open the connection.
        return state is None or state[:2] in _TRANSIENT_CLASSES
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", True)) or exc.__class__.__name__ in _KAFKA_TRANSIENT
    return isinstance(exc, OSError | asyncio.TimeoutError | TimeoutError)


# Kafka errors aiokafka does not mark retriable that still pass with time (the broker restarting).
_KAFKA_TRANSIENT = frozenset(
    {"KafkaConnectionError", "NodeNotReadyError", "RequestTimedOutError", "KafkaTimeoutError", "NoBrokersAvailable"}
)
