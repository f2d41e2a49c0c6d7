"""Baton's example Python worker: the original design's example plus the actions the demo workflows use.

Run it from the repository root with the project's virtualenv (Kafka from BATON_KAFKA_BOOTSTRAP_SERVERS,
default localhost:9092):

    .venv/bin/python examples/python/worker.py

Ctrl-C (or SIGTERM) drains the jobs in flight, then exits.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from baton import JobContext, Worker

worker = Worker()

# The original example, verbatim.
worker.register("step1", lambda payload: f"Processed: {payload}")
worker.register("step2", lambda payload: f"Step 2 processed: {payload}")


@worker.action("py.validate")
def validate(order: Any) -> dict[str, Any]:
    """Mark an order (any JSON) as validated by the Python worker."""
    return {"valid": True, "order": order, "validated_by": "python"}


@worker.action("py.report")
def report(inputs: Any) -> str:
    """One line that a person can read, e.g. for a fan-in of {parent_step: output}."""
    return f"Report (python): {json.dumps(inputs, sort_keys=True, ensure_ascii=False)}"


@worker.action("py.flaky")
def flaky(payload: Any, ctx: JobContext) -> dict[str, int]:
    """Fails on attempts 1 and 2, succeeds on attempt 3: shows the orchestrator's retries."""
    if ctx.attempt < 3:
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


if __name__ == "__main__":
    # The library never configures logging; an application does.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker.start()
