"""Waiting for a run: long polls woken by the run feed (trigger-and-wait, ?wait=, live views)."""

from __future__ import annotations

import time

from .core import Core, ServiceError
from .feed import TERMINAL_EVENTS, TooManyWaiters
from .store import queries

TERMINAL_RUN = ("COMPLETED", "FAILED", "CANCELLED")
_WAKES = TERMINAL_EVENTS | {"run_reopened"}


async def wait_for_run(core: Core, run_id: str, wait: float, changed_from: str | None = None) -> queries.RunDetail:
    """The run once it is terminal (or, with `changed_from`, once its version differs from that one), or
    as it stands after `wait` seconds. Woken by the commits that change it (the run feed), not by
    polling: one read now, one per relevant change."""
    if not 0 <= wait <= core.settings.max_wait_seconds:
        raise ServiceError(
            422,
            "invalid_wait",
            f"wait must be between 0 and {core.settings.max_wait_seconds:g} seconds (BATON_MAX_WAIT_SECONDS)",
        )
    deadline = time.monotonic() + wait
    try:
        with core.feed.subscribe(run_id) as changes:  # before the first read: no change can slip between
            while True:
                run = await queries.run_detail(core.pool, run_id)
                left = deadline - time.monotonic()
                moved = changed_from is not None and run.version != changed_from
                if moved or run.status in TERMINAL_RUN or left <= 0:
                    return run
                while left > 0:
                    change = await changes.next(left)
                    if change is None or changed_from is not None or change.type in _WAKES:
                        break
                    left = deadline - time.monotonic()
    except TooManyWaiters as exc:
        raise ServiceError(503, "too_many_waiters", f"{exc}; retry, or wait with a shorter ?wait") from None
