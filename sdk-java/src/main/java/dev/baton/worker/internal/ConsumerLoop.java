package dev.baton.worker.internal;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The consumer thread, the only one that touches the KafkaConsumer. It polls, hands records to the
 * handler pool while fewer than {@code concurrency} run, pauses fetching when full, and commits each
 * partition contiguously up to its first unfinished job.
 */
final class ConsumerLoop implements Runnable {
  private static final Logger LOG = LoggerFactory.getLogger(ConsumerLoop.class);
  private static final Duration POLL = Duration.ofMillis(100);
  private static final long COMMIT_EVERY_MS = 100;
  private static final long IDLE_CHECK_EVERY_MS = 100;
  // How long a rebalance may wait for the jobs running on revoked partitions (the Python SDK's bound too).
  private static final Duration REVOKE_WAIT = Duration.ofSeconds(5);

  private final Consumer<byte[], byte[]> consumer;
  private final Collection<String> topics;
  private final Settings settings;
  private final ExecutorService handlers;
  private final JobRunner runner;
  private final Counters counters;
  private final LinkedBlockingQueue<Event> events;
  private final boolean untilIdle;
  private final OffsetTracker tracker = new OffsetTracker();
  private final ArrayDeque<ConsumerRecord<byte[], byte[]>> buffer = new ArrayDeque<>();
  private final CountDownLatch finished = new CountDownLatch(1);
  private volatile boolean stopRequested;
  private boolean draining;
  private int outstanding; // dispatched jobs whose result is not acknowledged yet
  private volatile int tracked; // offsets in the tracker, for tests that check bookkeeping stays bounded
  private boolean assigned;
  // Revoked but not yet known to have moved: the classic protocol's eager rebalancing revokes every
  // partition before each reassignment, and most come straight back (see Rebalance).
  private final Set<TopicPartition> revokedPending = new HashSet<>();
  private long lastCommit;
  private long lastIdleCheck;

  ConsumerLoop(Consumer<byte[], byte[]> consumer, Collection<String> topics, Settings settings,
      ExecutorService handlers, JobRunner runner, Counters counters, LinkedBlockingQueue<Event> events,
      boolean untilIdle) {
    this.consumer = consumer;
    this.topics = topics;
    this.settings = settings;
    this.handlers = handlers;
    this.runner = runner;
    this.counters = counters;
    this.events = events;
    this.untilIdle = untilIdle;
  }

  void requestStop() {
    stopRequested = true;
  }

  boolean awaitFinished(Duration timeout) throws InterruptedException {
    return finished.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  @Override
  public void run() {
    try {
      consumer.subscribe(topics, new Rebalance());
      while (!stopRequested) {
        pollOnce();
        if (untilIdle && idle()) {
          break;
        }
      }
      drain();
    } catch (RuntimeException | InterruptedException e) {
      LOG.error("consumer loop stopped by an error; uncommitted jobs will be redelivered", e);
    } finally {
      try {
        consumer.close(Duration.ofSeconds(5));
      } finally {
        finished.countDown();
      }
    }
  }

  private void pollOnce() throws InterruptedException {
    boolean full = !buffer.isEmpty();
    if (full) {
      // Fetching is paused; poll only to keep the group membership alive, and wait for a free slot.
      consumer.pause(consumer.assignment());
      take(consumer.poll(Duration.ZERO));
      Event event = events.poll(50, TimeUnit.MILLISECONDS);
      if (event != null) {
        apply(event);
      }
    } else {
      if (!consumer.paused().isEmpty()) {
        consumer.resume(consumer.paused());
      }
      take(consumer.poll(POLL));
    }
    applyEvents();
    dispatch();
    commitIfDue(false);
    tracked = tracker.size();
  }

  /** Offsets the tracker holds (polled, not yet committed past), as of the last poll. */
  int tracked() {
    return tracked;
  }

  private void take(Iterable<ConsumerRecord<byte[], byte[]>> records) {
    for (ConsumerRecord<byte[], byte[]> record : records) {
      tracker.register(new TopicPartition(record.topic(), record.partition()), record.offset());
      buffer.add(record);
    }
  }

  private void dispatch() {
    // Mid-rebalance nothing starts: a buffered record of a partition that moves would run twice. While
    // results wait for Kafka (an outage, a missing topic), new jobs wait in the buffer, fetching paused.
    while (!buffer.isEmpty() && revokedPending.isEmpty() && counters.running.get() < settings.concurrency()
        && outstanding < settings.maxUnacknowledged()) {
      ConsumerRecord<byte[], byte[]> record = buffer.poll();
      counters.running.incrementAndGet();
      outstanding++;
      handlers.execute(() -> runner.run(record));
    }
  }

  /** Applies acknowledgements as they come until {@code done} holds or {@code bound} has passed. */
  private void applyEventsUntil(BooleanSupplier done, Duration bound) throws InterruptedException {
    long deadline = System.nanoTime() + bound.toNanos();
    while (!done.getAsBoolean() && System.nanoTime() < deadline) {
      Event event = events.poll(20, TimeUnit.MILLISECONDS);
      if (event != null) {
        apply(event);
      }
    }
  }

  private void applyEvents() {
    Event event;
    while ((event = events.poll()) != null) {
      apply(event);
    }
  }

  private void apply(Event event) {
    switch (event.kind()) {
      case ACKED -> {
        outstanding--;
        tracker.done(event.partition(), event.offset());
      }
      case SLOT_FREED -> { } // the dispatch that follows every apply uses the slot
    }
  }

  private void commitIfDue(boolean sync) {
    long now = System.currentTimeMillis();
    if (!sync && now - lastCommit < COMMIT_EVERY_MS) {
      return;
    }
    lastCommit = now;
    Map<TopicPartition, OffsetAndMetadata> offsets = tracker.committable();
    if (offsets.isEmpty()) {
      return;
    }
    if (sync) {
      try {
        consumer.commitSync(offsets, Duration.ofSeconds(10));
        tracker.committed(offsets);
      } catch (RuntimeException e) {
        LOG.warn("final commit failed, those jobs will be redelivered: {}", e.toString());
      }
    } else {
      consumer.commitAsync(offsets, (committed, e) -> {
        if (e == null) {
          tracker.committed(committed);
        } else {
          LOG.warn("commit failed, retrying with the next one: {}", e.toString());
        }
      });
    }
  }

  /** Burst mode: every assigned partition read to its end and every result acknowledged. */
  private boolean idle() {
    if (!assigned || !revokedPending.isEmpty() || !buffer.isEmpty() || outstanding > 0) {
      return false;
    }
    long now = System.currentTimeMillis();
    if (now - lastIdleCheck < IDLE_CHECK_EVERY_MS) {
      return false;
    }
    lastIdleCheck = now;
    Set<TopicPartition> assignment = consumer.assignment();
    Map<TopicPartition, Long> ends = consumer.endOffsets(assignment, Duration.ofSeconds(10));
    for (TopicPartition partition : assignment) {
      if (consumer.position(partition, Duration.ofSeconds(10)) < ends.get(partition)) {
        return false;
      }
    }
    return true;
  }

  /** Graceful stop: start nothing new, wait for running jobs' results, then commit what they freed. */
  private void drain() throws InterruptedException {
    draining = true;
    buffer.clear(); // never started: left uncommitted, so the group delivers them again
    applyEventsUntil(() -> outstanding == 0, settings.drainTimeout());
    applyEvents();
    if (outstanding > 0) {
      LOG.warn("{} jobs not finished after the drain timeout of {} (handler running or result unsent); they "
          + "stay uncommitted", outstanding, settings.drainTimeout());
    }
    commitIfDue(true);
  }

  /**
   * The classic group protocol rebalances eagerly: every partition is revoked, then the new assignment
   * arrives, usually giving most partitions back. Offsets are committed on revocation, but the
   * bookkeeping of a partition is dropped only once it really moved; one that came back resumes after
   * the last record polled (running and buffered jobs carry on), so a rebalance does not run the jobs
   * in flight a second time.
   */
  private final class Rebalance implements ConsumerRebalanceListener {
    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      assigned = true;
      List<TopicPartition> moved = new ArrayList<>();
      for (TopicPartition partition : revokedPending) {
        if (!partitions.contains(partition)) {
          moved.add(partition);
        }
      }
      forget(moved);
      for (TopicPartition partition : partitions) {
        long next = revokedPending.contains(partition) ? tracker.next(partition) : -1;
        if (next >= 0) {
          consumer.seek(partition, next);
        }
      }
      revokedPending.clear();
      LOG.debug("assigned {}", partitions);
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
      // Let the jobs running on these partitions finish first (bounded), so their offsets are committed
      // while we still own them and a partition's next owner does not run them again. The eager protocol
      // revokes every partition at each rebalance, so the bound caps how long a slow job holds up the
      // group; a job still running then is finished and sent anyway, and may run again on the next owner
      // (at-least-once). A draining worker has waited for its jobs already.
      if (!stopRequested && !draining) {
        awaitJobsRunningOn(partitions);
      }
      Map<TopicPartition, OffsetAndMetadata> offsets = tracker.committable(partitions);
      if (!offsets.isEmpty()) {
        try {
          consumer.commitSync(offsets, Duration.ofSeconds(10));
          tracker.committed(offsets);
        } catch (RuntimeException e) {
          LOG.warn("commit on revocation failed: {}", e.toString());
        }
      }
      revokedPending.addAll(partitions);
    }

    private void awaitJobsRunningOn(Collection<TopicPartition> partitions) {
      int running = runningOn(partitions);
      if (running == 0) {
        return;
      }
      LOG.info("rebalance: waiting up to {} for {} jobs running on revoked partitions", REVOKE_WAIT, running);
      try {
        // A stop request ends the wait: the drain that follows bounds how long running jobs may take.
        applyEventsUntil(() -> stopRequested || runningOn(partitions) == 0, REVOKE_WAIT);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }

    /** Jobs of {@code partitions} started and not yet acknowledged (buffered ones have not started). */
    private int runningOn(Collection<TopicPartition> partitions) {
      int buffered = 0;
      for (ConsumerRecord<byte[], byte[]> record : buffer) {
        if (partitions.contains(new TopicPartition(record.topic(), record.partition()))) {
          buffered++;
        }
      }
      return tracker.pending(partitions) - buffered;
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
      // Lost means another member may own them already: nothing of ours about them is valid any more.
      revokedPending.removeAll(partitions);
      forget(partitions);
    }

    private void forget(Collection<TopicPartition> partitions) {
      if (partitions.isEmpty()) {
        return;
      }
      tracker.forget(partitions);
      List<TopicPartition> gone = new ArrayList<>(partitions);
      buffer.removeIf(r -> gone.contains(new TopicPartition(r.topic(), r.partition())));
    }
  }
}
