"""The result producer's partitioner: Java's murmur2 placement (as every Baton producer), memoised."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped,unused-ignore]

from baton._kafka import _KeyPartitioner


def test_same_partition_as_the_default_murmur2_partitioner_for_any_key_and_partition_count() -> None:
    mine, reference = _KeyPartitioner(), DefaultPartitioner()
    keys = [str(uuid.uuid4()).encode() for _ in range(300)] + [b"", b"a", b"run-1"]
    for n in (1, 3, 6, 12):
        parts = list(range(n))
        for key in keys:
            expected = reference(key, parts, parts)
            assert mine(key, parts, parts) == expected
            assert mine(key, parts, parts) == expected  # memoised answer


def test_memo_is_bounded_and_keyless_messages_still_spread() -> None:
    mine = _KeyPartitioner()
    mine._MAX = 10
    for i in range(25):
        mine(str(i).encode(), [0, 1, 2], [0, 1, 2])
    assert len(mine._memo) <= 10
    assert {mine(None, [0, 1, 2], [0, 1, 2]) for _ in range(200)} == {0, 1, 2}
