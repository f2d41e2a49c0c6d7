package dev.baton.worker.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

/** The tracker stays bounded by what is in flight, whatever path the offsets take. */
class OffsetTrackerTest {
  private static final TopicPartition P0 = new TopicPartition("jobs.a", 0);
  private static final TopicPartition P1 = new TopicPartition("jobs.a", 1);
  private static final int JOBS = 100_000;

  @Test
  void shouldHoldOnlyUnfinishedOffsetsWhen100kJobsTakeEveryPath() {
    OffsetTracker tracker = new OffsetTracker();
    int maxSize = 0;
    for (int batch = 0; batch < JOBS / 100; batch++) {
      long base = batch * 100L;
      for (int i = 0; i < 100; i++) {
        tracker.register(P0, base + i);
        tracker.register(P1, base + i);
      }
      maxSize = Math.max(maxSize, tracker.size());
      // P0: acknowledged out of order (results of a batch finish in any order); P1: in order.
      for (int i = 99; i >= 0; i--) {
        tracker.done(P0, base + i);
      }
      for (int i = 0; i < 100; i++) {
        tracker.done(P1, base + i);
      }
      Map<TopicPartition, OffsetAndMetadata> offsets = tracker.committable();
      assertThat(offsets.get(P0).offset()).isEqualTo(base + 100);
      tracker.committed(offsets);
    }
    assertThat(maxSize).isEqualTo(200);
    assertThat(tracker.size()).isZero();
    assertThat(tracker.committable()).isEmpty();
  }

  @Test
  void shouldNotCommitPastAnUnfinishedJobAndDropAPartitionThatMoved() {
    OffsetTracker tracker = new OffsetTracker();
    for (long offset = 0; offset < JOBS; offset++) {
      tracker.register(P0, offset);
      tracker.register(P1, offset);
    }
    for (long offset = 1; offset < JOBS; offset++) {
      tracker.done(P0, offset); // offset 0 is still being sent
    }
    assertThat(tracker.committable().get(P0).offset()).isZero(); // never past the job still being sent
    assertThat(tracker.size()).isEqualTo(JOBS + 1);
    tracker.done(P0, 0);
    assertThat(tracker.committable().get(P0).offset()).isEqualTo(JOBS);
    tracker.forget(List.of(P1)); // revoked and moved: its acks no longer count here
    tracker.done(P1, 5);
    assertThat(tracker.size()).isZero();
    assertThat(tracker.partitions()).isEqualTo(1);
  }
}
