"""The trigger load: the open-loop arrival schedule, and a minimal HTTP/1.1 keep-alive client to send it
(httpx cost ~3 ms CPU per request here, which on a 2-core box would make the load generator a bottleneck
of its own).

Only what the bench needs: POST with a JSON body, status code and JSON response, a fixed pool of
persistent connections. A request that fails is reported, never retried (a retried POST could create a
second run and hide a lost one).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from analyze import Trigger
from workloads import PAD

# uvicorn closes a keep-alive connection after 5 s idle; reusing one at that moment loses the request
# (IncompleteReadError). Connections idle longer than this are replaced before use instead.
MAX_IDLE_S = 3.0


class HttpPool:
    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        # LIFO: the most recently used connection goes out first, so idle ones age out instead of racing.
        self._idle: asyncio.LifoQueue[tuple[asyncio.StreamReader, asyncio.StreamWriter, float] | None] = (
            asyncio.LifoQueue()
        )
        for _ in range(size):
            self._idle.put_nowait(None)  # a slot; connected on first use

    async def _conn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        slot = await self._idle.get()
        if slot is not None:
            reader, writer, last = slot
            if not reader.at_eof() and not writer.is_closing() and time.monotonic() - last < MAX_IDLE_S:
                return reader, writer
            writer.close()
        try:
            return await asyncio.open_connection(self.host, self.port)
        except BaseException:
            self._idle.put_nowait(None)
            raise

    async def post(self, path: str, body: bytes) -> tuple[int, Any]:
        return await self.request("POST", path, body)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
        reader, writer = await self._conn()
        ok = False
        try:
            writer.write(
                b"%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (method.encode(), path.encode(), self.host.encode(), self.port, len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length, close = 0, False
            for line in lines[1:]:
                k, _, v = line.partition(":")
                k = k.strip().lower()
                if k == "content-length":
                    length = int(v)
                elif k == "connection" and "close" in v.lower():
                    close = True
            data = await reader.readexactly(length) if length else b""
            ok = not close
            return status, json.loads(data) if data else None
        finally:
            if ok:
                self._idle.put_nowait((reader, writer, time.monotonic()))
            else:
                writer.close()
                self._idle.put_nowait(None)

    async def close(self) -> None:
        while not self._idle.empty():
            slot = self._idle.get_nowait()
            if slot is not None:
                slot[1].close()


async def open_loop(
    pool: HttpPool, path: str, rate: float, t_start: float, duration: float, cap: int, failures: list[str]
) -> list[Trigger]:
    """Open loop: arrivals on a fixed schedule, never waiting for earlier responses (up to `cap` in flight;
    an arrival over the cap is shed). Failed requests are described in `failures`, never retried."""
    out: list[Trigger] = []
    inflight: set[asyncio.Task[None]] = set()

    async def one(t_sched: float, i: int) -> None:
        t_sent = time.time()
        body = b'{"input":{"n":%d,"pad":"%s"}}' % (i, PAD.encode())
        try:
            status, data = await pool.post(path, body)
            rid = data.get("run_id") if status == 201 else None
            if status != 201:
                failures.append(f"HTTP {status}: {str(data)[:200]}")
            out.append(Trigger(t_sched, t_sent, time.time(), status, rid))
        except Exception as exc:
            out.append(Trigger(t_sched, t_sent, time.time(), 0, None))
            failures.append(f"{type(exc).__name__}: {exc}"[:200])

    n = int(rate * duration)
    for i in range(n):
        t_sched = t_start + i / rate
        delay = t_sched - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(inflight) >= cap:
            out.append(Trigger(t_sched, math.nan, math.nan, -1, None))
            continue
        task = asyncio.create_task(one(t_sched, i))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    if inflight:
        await asyncio.wait(inflight, timeout=60)
    return out
