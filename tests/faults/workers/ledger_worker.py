"""Python ledger worker for the fault suite.

Every action in LEDGER_ACTIONS appends "start|done,python,job_id,attempt,run_id,step" to LEDGER_FILE
(one O_APPEND write per line, fsynced), sleeping LEDGER_SLEEP_MS between the two. Actions in
LEDGER_HANG_ACTIONS record "start" and then never return (for the timeout scenario). Actions in
LEDGER_POISON_ACTIONS return the poison value their payload names (POISON), as a buggy handler would.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from baton import JobContext, Worker

LEDGER = os.environ["LEDGER_FILE"]
SLEEP = float(os.environ.get("LEDGER_SLEEP_MS", "0")) / 1000
HANG = {a for a in os.environ.get("LEDGER_HANG_ACTIONS", "").split(",") if a}
POISONED = {a for a in os.environ.get("LEDGER_POISON_ACTIONS", "").split(",") if a}


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


POISON = {"nul": "a\x00b", "nul_in_key": {"k\x00": 1}, "deep": _nested(200)}


def record(phase: str, ctx: JobContext) -> None:
    line = f"{phase},python,{ctx.job_id},{ctx.attempt},{ctx.run_id},{ctx.step}\n".encode()
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def make(action: str) -> Any:
    async def handler(payload: Any, ctx: JobContext) -> Any:
        record("start", ctx)
        if action in HANG:
            await asyncio.Event().wait()
        if SLEEP:
            await asyncio.sleep(SLEEP)
        record("done", ctx)
        return POISON[payload] if action in POISONED else payload

    return handler


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    worker = Worker()
    for action in os.environ["LEDGER_ACTIONS"].split(","):
        worker.register(action, make(action))
    worker.start()


if __name__ == "__main__":
    main()
