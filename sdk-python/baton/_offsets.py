"""Which offsets are safe to commit: contiguous per partition, never past an unfinished job."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Any

TopicPartition = Hashable  # aiokafka's (topic, partition) named tuple; any hashable key works


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

    def unfinished(self) -> int:
        return sum(len(p.pending) for p in self._parts.values())
