package dev.baton.worker.internal;

import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Function;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordBatchTooLargeException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sends the record that finishes a job (its result, or its dead letter) until Kafka acknowledges it, and
 * only then reports the job's offset as done. A transient failure (Kafka away longer than the producer's
 * {@code delivery.timeout.ms}, a topic missing for a while) is retried with backoff for as long as the
 * worker runs; a record Kafka refuses for good (too large) is replaced once by what the caller supplies.
 * Dropping either would leave the offset unfinished forever, and with it every later commit of its
 * partition.
 */
final class ResultSender {
  private static final Logger LOG = LoggerFactory.getLogger(ResultSender.class);
  private static final long FIRST_BACKOFF_MS = 100;
  private static final long MAX_BACKOFF_MS = 5_000;
  private static final int LOG_EVERY = 10;

  /** A record to send and what to count once Kafka has it. */
  record Outgoing(ProducerRecord<byte[], byte[]> record, Runnable onAcked) {}

  private record Pending(Outgoing out, TopicPartition source, long offset,
      Function<Exception, Outgoing> replacement, int attempt) {
    Pending next() {
      return new Pending(out, source, offset, replacement, attempt + 1);
    }
  }

  private final Producer<byte[], byte[]> producer;
  private final Consumer<Event> events;
  private final ScheduledExecutorService retries = Executors.newSingleThreadScheduledExecutor(r -> {
    Thread thread = new Thread(r, "baton-send-retry");
    thread.setDaemon(true);
    return thread;
  });
  private volatile boolean closed;

  ResultSender(Producer<byte[], byte[]> producer, Consumer<Event> events) {
    this.producer = producer;
    this.events = events;
  }

  /**
   * Sends {@code out} for the job at {@code source}@{@code offset}.
   *
   * @param replacement what to send instead if Kafka refuses {@code out} for good; null: retry as usual
   */
  void send(Outgoing out, TopicPartition source, long offset, Function<Exception, Outgoing> replacement) {
    attempt(new Pending(out, source, offset, replacement, 1));
  }

  /** Stops retrying: what is still unsent stays uncommitted and is delivered again after a restart. */
  void close() {
    closed = true;
    retries.shutdownNow();
  }

  private void attempt(Pending pending) {
    if (closed) {
      LOG.warn("worker stopped before the result for {}@{} was sent; the job stays uncommitted",
          pending.source(), pending.offset());
      return;
    }
    try {
      producer.send(pending.out().record(), (meta, e) -> {
        if (e == null) {
          pending.out().onAcked().run();
          events.accept(new Event(Event.Kind.ACKED, pending.source(), pending.offset()));
        } else {
          failed(pending, e);
        }
      });
    } catch (RuntimeException e) { // e.g. metadata not available within max.block.ms
      failed(pending, e);
    }
  }

  private void failed(Pending pending, Exception e) {
    if (refusedForGood(e) && pending.replacement() != null) {
      LOG.warn("result for {}@{} refused by Kafka ({}); sending a FAILED result that fits instead",
          pending.source(), pending.offset(), e.toString());
      Outgoing instead = pending.replacement().apply(e);
      // Off the producer's I/O thread, which must never block in send().
      schedule(new Pending(instead, pending.source(), pending.offset(), null, 1), 0);
      return;
    }
    long backoff = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS << Math.min(pending.attempt() - 1, 10));
    if (pending.attempt() % LOG_EVERY == 1) {
      LOG.warn("result for {}@{} not sent yet (attempt {}: {}); retrying every {} ms at most, the job stays "
          + "uncommitted until then", pending.source(), pending.offset(), pending.attempt(), e.toString(),
          MAX_BACKOFF_MS);
    }
    schedule(pending.next(), backoff);
  }

  private void schedule(Pending pending, long delayMs) {
    try {
      retries.schedule(() -> attempt(pending), delayMs, TimeUnit.MILLISECONDS);
    } catch (RejectedExecutionException stopped) {
      LOG.warn("worker stopped before the result for {}@{} was sent; the job stays uncommitted",
          pending.source(), pending.offset());
    }
  }

  private static boolean refusedForGood(Exception e) {
    return e instanceof RecordTooLargeException || e instanceof RecordBatchTooLargeException;
  }
}
