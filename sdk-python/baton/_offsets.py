"""Which offsets are safe to commit (contiguous per partition, never past an unfinished job), and
committing them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Collection, Hashable, Iterable
from typing import Any

from ._kafka import AIOKafkaConsumer, ConsumerRebalanceListener, KafkaError

log = logging.getLogger("baton")

TopicPartition = Hashable  # aiokafka's (topic, partition) named tuple; any hashable key works
# At most one offset commit per interval; commits batch up meanwhile. Each is a write to the broker's
# offsets log: at 0.05 s they were 14 of its 80 requests/s at 100 steps/s. Revocation and stop commit at
# once, so the interval only bounds what a killed worker's successor runs again (deduplicated).
_COMMIT_INTERVAL_S = 0.25
_RETRY_S = (0.2, 5.0)  # backoff between attempts of a failed commit
_REVOKE_WAIT_S = 5.0  # how long a rebalance may wait for the jobs in flight on revoked partitions


class _Partition:
    __slots__ = ("committed", "done", "frontier", "live", "pending")

    def __init__(self) -> None:
        self.pending: deque[int] = deque()  # fetched offsets, in fetch (= offset) order
        self.done: set[int] = set()
        self.frontier: int | None = None  # next offset to commit: every fetched offset below it is done
        self.committed: int | None = None
        self.live = True


class Ticket:
    """One fetched record; :meth:`done` once its result (or dead letter) is acknowledged by Kafka."""

    __slots__ = ("_offset", "_partition")

    def __init__(self, partition: _Partition, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def done(self) -> None:
        part = self._partition
        if not part.live:
            return  # the partition was revoked: its new owner starts from the last commit
        part.done.add(self._offset)
        while part.pending and part.pending[0] in part.done:
            offset = part.pending.popleft()
            part.done.discard(offset)
            part.frontier = offset + 1


class OffsetTracker:
    """Tracks fetched records per partition and yields the offsets that may be committed."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, _Partition] = {}

    def track(self, tp: TopicPartition, offset: int) -> Ticket:
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = _Partition()
        part.pending.append(offset)
        return Ticket(part, offset)

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets (next to read) that moved past the last commit, for ``consumer.commit``."""
        return {tp: p.frontier for tp, p in self._parts.items() if p.frontier is not None and p.frontier != p.committed}

    def mark_committed(self, offsets: dict[TopicPartition, Any]) -> None:
        for tp, offset in offsets.items():
            part = self._parts.get(tp)
            if part is not None:
                part.committed = offset

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop committing for revoked partitions; late acknowledgements for them are ignored."""
        for tp in partitions:
            part = self._parts.pop(tp, None)
            if part is not None:
                part.live = False

    def unfinished(self, partitions: Iterable[TopicPartition] | None = None) -> int:
        """Jobs fetched and not yet acknowledged: all of them, or those of `partitions`."""
        if partitions is None:
            return sum(len(p.pending) for p in self._parts.values())
        return sum(len(p.pending) for tp in partitions if (p := self._parts.get(tp)) is not None)


class Committer(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what the tracker allows, in batches; the consumer's rebalance listener too."""

    def __init__(self, consumer: AIOKafkaConsumer, revoke_wait: float = _REVOKE_WAIT_S) -> None:
        self._consumer = consumer
        self._revoke_wait = revoke_wait
        self.tracker = OffsetTracker()
        self._wanted = asyncio.Event()
        self._progress = asyncio.Event()  # a job was acknowledged (a revocation may be waiting for it)
        self._lock = asyncio.Lock()  # one commit at a time: the loop, a revocation, the final one

    def finished(self, ticket: Ticket) -> None:
        """A record's result (or dead letter) was acknowledged by Kafka."""
        ticket.done()
        self._wanted.set()
        self._progress.set()

    async def loop(self) -> None:
        backoff = _RETRY_S[0]
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if await self.commit():
                backoff = _RETRY_S[0]
                await asyncio.sleep(_COMMIT_INTERVAL_S)
            else:
                # Retried even if no other job finishes: a commit lost to an outage must not freeze the
                # partition's committed offset (its jobs would all run again after a restart).
                self._wanted.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _RETRY_S[1])

    async def commit(self, only: Collection[TopicPartition] | None = None) -> bool:
        """Commit what may be committed; False if Kafka refused (nothing is lost: retry later)."""
        async with self._lock:
            assigned = self._consumer.assignment()
            offsets = {
                tp: o for tp, o in self.tracker.committable().items() if tp in assigned and (only is None or tp in only)
            }
            if not offsets:
                return True
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                log.warning("offset commit failed (retried): %r", exc)
                return False
            self.tracker.mark_committed(offsets)
            return True

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Let the jobs in flight on these partitions finish first, so their offsets are committed while
        # we still own the partitions and their next owner does not run them again. Bounded: the classic
        # protocol revokes every partition of every member at each rebalance, so a slow job would hold up
        # the whole group; one still running at the bound is finished and sent anyway, and run again by
        # the next owner (its result is deduplicated by the engine).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._revoke_wait
        while self.tracker.unfinished(revoked) and (remaining := deadline - loop.time()) > 0:
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        await self.commit(revoked)
        self.tracker.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
