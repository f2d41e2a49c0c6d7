package dev.baton.worker.internal;

import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeSet;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Which offsets may be committed. A record is registered when polled and marked done when its result
 * (or dead letter) is acknowledged; the committable offset of a partition is its lowest unfinished
 * offset, so a commit never passes a job that could still be lost. Used by the consumer thread only.
 */
final class OffsetTracker {
  private static final class PartitionState {
    final TreeSet<Long> pending = new TreeSet<>();
    long next = -1;
    long committed = -1;
  }

  private final Map<TopicPartition, PartitionState> partitions = new HashMap<>();

  void register(TopicPartition partition, long offset) {
    PartitionState state = partitions.computeIfAbsent(partition, p -> new PartitionState());
    state.pending.add(offset);
    state.next = Math.max(state.next, offset + 1);
  }

  /** Acks for partitions revoked in the meantime are ignored: another worker owns their commits now. */
  void done(TopicPartition partition, long offset) {
    PartitionState state = partitions.get(partition);
    if (state != null) {
      state.pending.remove(offset);
    }
  }

  /** Offsets that moved since the last successful commit. */
  Map<TopicPartition, OffsetAndMetadata> committable() {
    return committable(partitions.keySet());
  }

  Map<TopicPartition, OffsetAndMetadata> committable(Collection<TopicPartition> which) {
    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
    for (TopicPartition partition : which) {
      PartitionState state = partitions.get(partition);
      if (state == null || state.next < 0) {
        continue;
      }
      long offset = state.pending.isEmpty() ? state.next : state.pending.first();
      if (offset > state.committed) {
        offsets.put(partition, new OffsetAndMetadata(offset));
      }
    }
    return offsets;
  }

  void committed(Map<TopicPartition, OffsetAndMetadata> offsets) {
    offsets.forEach((partition, offset) -> {
      PartitionState state = partitions.get(partition);
      if (state != null) {
        state.committed = Math.max(state.committed, offset.offset());
      }
    });
  }

  /** Records polled from {@code which} and not yet done. */
  int pending(Collection<TopicPartition> which) {
    int count = 0;
    for (TopicPartition partition : which) {
      PartitionState state = partitions.get(partition);
      count += state == null ? 0 : state.pending.size();
    }
    return count;
  }

  /** The offset after the last record polled from {@code partition}, or -1 when none was. */
  long next(TopicPartition partition) {
    PartitionState state = partitions.get(partition);
    return state == null ? -1 : state.next;
  }

  /** Offsets still pending, over every partition: bounded by what was polled and is not finished. */
  int size() {
    int count = 0;
    for (PartitionState state : partitions.values()) {
      count += state.pending.size();
    }
    return count;
  }

  /** Partitions with bookkeeping: those assigned (or revoked and not known to have moved yet). */
  int partitions() {
    return partitions.size();
  }

  void forget(Collection<TopicPartition> revoked) {
    revoked.forEach(partitions::remove);
  }
}
