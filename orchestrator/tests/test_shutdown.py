"""Shutdown: every engine loop ends, even one that swallowed a cancellation (Python 3.11's wait_for can)."""

from __future__ import annotations

import asyncio

from baton_orchestrator.app import _stop


async def test_a_loop_that_swallows_its_first_cancellation_is_cancelled_again() -> None:
    swallowed = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.append(True)  # as wait_for does when the cancel meets a result: the loop goes on
        await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(_stop([task]), 5)  # a plain cancel + gather would wait for an hour
    assert swallowed == [True] and task.cancelled()
