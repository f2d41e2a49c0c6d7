package dev.baton.worker.internal;

import java.time.Instant;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * One job between dispatch and the end of its handler. The handler's return and the deadline watch race
 * to {@link #answer()}: whichever wins sends the job's one result, the other is dropped. The slot is
 * given back once, by whoever frees it first.
 */
final class RunningJob {
  final ConsumerRecord<byte[], byte[]> record;
  final Job job;
  final Tracing.Handle span;
  final Instant startedAt = Instant.now();
  private final AtomicBoolean answered = new AtomicBoolean();
  private final AtomicBoolean slotFreed = new AtomicBoolean();
  private Context ctx;
  private volatile ScheduledFuture<?> watch;
  private volatile CompletableFuture<?> pending;
  // Guarded by this: the handler's thread while it runs the handler, and the abandonment bookkeeping.
  private Thread thread;
  private boolean returned;
  private boolean abandoned;
  private boolean freedWhileAbandoned;

  RunningJob(ConsumerRecord<byte[], byte[]> record, Job job, Tracing.Handle span) {
    this.record = record;
    this.job = job;
    this.span = span;
  }

  void context(Context context) {
    ctx = context;
  }

  Context context() {
    return ctx;
  }

  Instant deadline() {
    return ctx.deadline();
  }

  /** True for the one caller that gets to send this job's result. */
  boolean answer() {
    return answered.compareAndSet(false, true);
  }

  boolean answered() {
    return answered.get();
  }

  /** True for the one caller that gets to give the slot back. */
  boolean freeSlot() {
    return slotFreed.compareAndSet(false, true);
  }

  void watch(ScheduledFuture<?> next) {
    watch = next;
  }

  void stopWatching() {
    ScheduledFuture<?> current = watch;
    if (current != null) {
      current.cancel(false);
    }
  }

  synchronized void enter(Thread handlerThread) {
    thread = handlerThread;
  }

  /** The handler call is over: an interrupt meant for it must not hit the next job on this thread. */
  synchronized void leave() {
    thread = null;
    Thread.interrupted();
  }

  void pending(CompletableFuture<?> future) {
    pending = future;
  }

  /**
   * Stops waiting for the handler: interrupts its thread, or cancels the future it returned.
   *
   * @return where the handler's thread was (a stack trace), or null when it was not on one
   */
  String interrupt() {
    String stack = null;
    synchronized (this) {
      if (thread != null) {
        stack = stackOf(thread);
        thread.interrupt();
      }
    }
    CompletableFuture<?> future = pending;
    if (future != null) {
      future.cancel(true); // completes it, which counts as the handler returning
    }
    return stack;
  }

  /**
   * Marks the timed-out handler abandoned and reports whether its slot may be given back now (under
   * the cap). False also when it returned meanwhile: that return already gave the slot back.
   */
  synchronized boolean abandon(Counters counters, int maxAbandoned) {
    if (returned) {
      return false;
    }
    abandoned = true;
    counters.stuck.incrementAndGet();
    if (counters.abandonedFreed.incrementAndGet() <= maxAbandoned) {
      freedWhileAbandoned = true;
      return true;
    }
    counters.abandonedFreed.decrementAndGet();
    return false;
  }

  /** The handler returned after its job was answered; true when its slot is still to be given back. */
  synchronized boolean returnedLate(Counters counters) {
    returned = true;
    if (!abandoned) {
      return true;
    }
    counters.stuck.decrementAndGet();
    if (freedWhileAbandoned) {
      counters.abandonedFreed.decrementAndGet();
      return false;
    }
    return true;
  }

  private static String stackOf(Thread thread) {
    StringBuilder out = new StringBuilder("handler thread ").append(thread.getName()).append('\n');
    for (StackTraceElement frame : thread.getStackTrace()) {
      out.append("\tat ").append(frame).append('\n');
    }
    return out.toString();
  }
}
