"""The gate's tick: every flow_tick_seconds while steps are held, backing off while none is held anywhere."""

from __future__ import annotations

import asyncio
import itertools
import time

from baton_orchestrator.engine.gate import GateLoop
from baton_orchestrator.settings import Settings


def _loop(idle: bool) -> tuple[GateLoop, list[float]]:
    gate = GateLoop(Settings(flow_tick_seconds=0.01), None, None, None)  # type: ignore[arg-type]
    sweeps: list[float] = []

    async def sweep() -> int:
        sweeps.append(time.monotonic())
        gate.idle = idle
        return 0

    gate.sweep = sweep  # type: ignore[method-assign]
    return gate, sweeps


async def test_with_nothing_held_the_tick_doubles_up_to_its_cap_and_a_wake_sweeps_at_once():
    gate, sweeps = _loop(idle=True)
    task = asyncio.create_task(gate.run())
    try:
        await asyncio.sleep(1.3)
        gaps = [b - a for a, b in itertools.pairwise(sweeps)]
        assert gaps[0] < 0.1 and 0.4 < max(gaps) < 0.7, gaps
        assert len(sweeps) < 12  # not every 10 ms
        before = len(sweeps)
        woken = time.monotonic()
        gate.wake.set()
        for _ in range(50):
            if len(sweeps) > before:
                break
            await asyncio.sleep(0.01)
        assert len(sweeps) > before and sweeps[before] - woken < 0.1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_while_steps_are_held_the_gate_sweeps_every_tick():
    gate, sweeps = _loop(idle=False)
    task = asyncio.create_task(gate.run())
    try:
        await asyncio.sleep(0.5)
        assert len(sweeps) > 15, len(sweeps)  # ~every 10 ms, never backed off
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
