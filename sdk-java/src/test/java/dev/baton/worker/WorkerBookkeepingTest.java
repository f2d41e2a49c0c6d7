package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Per-job bookkeeping (tracked offsets, deadline watches) is released as jobs finish, whatever the outcome. */
class WorkerBookkeepingTest {
  private static final int JOBS = 3000;

  private TestKafka kafka;

  @BeforeEach
  void setUp() {
    kafka = new TestKafka();
  }

  @AfterEach
  void tearDown() throws Exception {
    kafka.close();
  }

  @Test
  void shouldHoldNoPerJobStateWhenThousandsOfJobsHaveFinished() throws Exception {
    kafka.createJobTopics(3, "noop");
    kafka.sendJobs("noop", "job-", JOBS, "null");
    AtomicInteger seen = new AtomicInteger();
    AtomicInteger peak = new AtomicInteger();
    try (Worker worker = kafka.worker().concurrency(8).maxPayloadBytes(100).build()) {
      worker.register("noop", payload -> {
        peak.accumulateAndGet(worker.bookkeeping(), Math::max);
        return switch (seen.incrementAndGet() % 4) { // every outcome path, a quarter each
          case 0 -> throw new IllegalStateException("failed");
          case 1 -> new Object(); // SerializationError
          case 2 -> "x".repeat(200); // PayloadTooLarge
          default -> null;
        };
      });
      worker.startAsync();

      await().atMost(Duration.ofSeconds(120)).until(() -> kafka.committed("noop") == JOBS);
      assertThat(worker.report().total()).isEqualTo(JOBS);
      await().atMost(Duration.ofSeconds(10)).until(() -> worker.bookkeeping() == 0);
      // Bounded by what a poll brings (100 records at concurrency 8) plus the jobs dispatched and not yet
      // acknowledged (at most 8 + 2 x 100) plus their deadline watches (8), not by the number of jobs.
      assertThat(peak.get()).isPositive().isLessThanOrEqualTo(100 + 208 + 8);
    }
  }
}
