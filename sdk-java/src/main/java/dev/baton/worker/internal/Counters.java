package dev.baton.worker.internal;

import dev.baton.worker.RunReport;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/** Live counts, updated from producer callbacks and handler threads. */
public final class Counters {
  final AtomicLong completed = new AtomicLong();
  final AtomicLong failed = new AtomicLong();
  final AtomicLong deadLettered = new AtomicLong();
  /** Handlers running now, i.e. the slots of {@code concurrency} in use. */
  final AtomicInteger running = new AtomicInteger();
  /** Handlers answered with Timeout that have not returned yet (the heartbeat's {@code stuck_slots}). */
  final AtomicInteger stuck = new AtomicInteger();
  /** Those of {@link #stuck} whose slot was given back, at most {@code maxAbandoned}. */
  final AtomicInteger abandonedFreed = new AtomicInteger();

  public RunReport report() {
    return new RunReport(completed.get(), failed.get(), deadLettered.get());
  }

  public int running() {
    return running.get();
  }

  public int stuck() {
    return stuck.get();
  }
}
