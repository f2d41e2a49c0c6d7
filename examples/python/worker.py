"""Baton's example Python worker: the original design's example plus the actions the demo workflows use.

Run it from the repository root with the project's virtualenv (Kafka from BATON_KAFKA_BOOTSTRAP_SERVERS,
default localhost:9092):

    .venv/bin/python examples/python/worker.py

Ctrl-C (or SIGTERM) drains the jobs in flight, then exits. Tracing: with BATON_TRACE_DIR set, finished
spans go to $BATON_TRACE_DIR/baton-worker-python-<pid>.jsonl; with OTEL_EXPORTER_OTLP_ENDPOINT set, over
OTLP/HTTP too (baton.otel, the SDK's 'otel' extra).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from baton import JobContext, Worker
from baton.otel import configure_tracing

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
    tracing = configure_tracing("baton-worker-python")  # None (nothing configured) without the env vars
    try:
        worker.start()
    finally:
        if tracing is not None:
            tracing.shutdown()  # flushes the spans still batched
