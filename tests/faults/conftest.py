"""Fixtures of the fault suite: a scenario on the shared stack (own schema, prefixes and groups), a
private stack for the scenarios that stop infrastructure, and the per-scenario counts report."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import REPORT, Conn, PrivateStack, Scenario


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the fault and abuse suite (tests/faults)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    terminalreporter.section("fault suite counts")
    for entry in REPORT:
        terminalreporter.write_line(json.dumps(entry))
    if out := os.environ.get("BATON_FAULTS_REPORT"):
        with open(out, "a") as f:
            for entry in REPORT:
                f.write(json.dumps(entry) + "\n")


@pytest.fixture
def scenario(services: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Scenario]:
    """A scenario on the shared stack: nothing here stops Kafka, PostgreSQL or Redis."""
    s = Scenario(request.node.name, Conn(services.kafka, services.database_url, services.redis_url), tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def private_stack() -> Iterator[PrivateStack]:
    """Our own Kafka, PostgreSQL and Redis on free ports (a temp BATON_STACK_DIR), stopped at the end.
    A failure to start fails the tests: they never skip."""
    stack = PrivateStack()
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture
def private_scenario(private_stack: PrivateStack, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Scenario]:
    private_stack.up()  # idempotent: brings back whatever an earlier scenario left stopped
    s = Scenario(request.node.name, private_stack.conn, tmp_path)
    try:
        yield s
    finally:
        s.close()
