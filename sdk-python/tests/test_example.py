"""The example worker's actions, run through baton.testing (no Kafka)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from baton.testing import run_handler

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "worker.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("baton_example_worker", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_registers_the_demo_actions(example: ModuleType) -> None:
    assert example.worker.actions == ["step1", "step2", "py.validate", "py.report", "py.flaky"]


async def test_original_steps_format_their_input(example: ModuleType) -> None:
    step1 = example.worker._handlers["step1"].fn
    step2 = example.worker._handlers["step2"].fn
    assert (await run_handler(step1, "Hello World")).output == "Processed: Hello World"
    assert (await run_handler(step2, "Processed: Hello World")).output == "Step 2 processed: Processed: Hello World"


async def test_validate_wraps_the_order(example: ModuleType) -> None:
    outcome = await run_handler(example.validate, {"id": 42})
    assert outcome.output == {"valid": True, "order": {"id": 42}, "validated_by": "python"}


async def test_report_is_one_line_with_the_input_json(example: ModuleType) -> None:
    outcome = await run_handler(example.report, {"node": {"n": 2}, "py": {"n": 1}})
    assert outcome.output == 'Report (python): {"node": {"n": 2}, "py": {"n": 1}}'
    assert "\n" not in outcome.output


@pytest.mark.parametrize("attempt", [1, 2])
async def test_flaky_fails_retryably_before_the_third_attempt(example: ModuleType, attempt: int) -> None:
    outcome = await run_handler(example.flaky, None, attempt=attempt)
    assert outcome.status == "FAILED"
    assert outcome.error is not None
    assert (outcome.error["type"], outcome.error["retryable"]) == ("RuntimeError", True)


async def test_flaky_succeeds_on_the_third_attempt(example: ModuleType) -> None:
    assert (await run_handler(example.flaky, None, attempt=3)).output == {"attempt": 3}
