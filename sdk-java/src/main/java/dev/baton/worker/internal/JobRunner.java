package dev.baton.worker.internal;

import dev.baton.worker.BatonError;
import dev.baton.worker.ContextJobHandler;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/**
 * Runs one job on a handler thread: decode, call the handler, await a returned CompletionStage, send the
 * one result. A deadline watch answers {@code Timeout} for a handler still running past the job's
 * deadline plus the grace. Reports to the consumer thread through {@link Event}s, never touching the
 * consumer itself.
 */
final class JobRunner {
  private static final Logger LOG = LoggerFactory.getLogger(JobRunner.class);
  private static final String[] MDC_KEYS = {"job_id", "run_id", "step", "attempt", "action"};

  private final Settings settings;
  private final Envelopes envelopes;
  private final Producer<byte[], byte[]> producer;
  private final ResultSender sender;
  private final ScheduledExecutorService deadlines;
  private final Map<String, ContextJobHandler> handlers;
  private final Counters counters;
  private final Consumer<Event> events;
  private final Tracing tracing;

  JobRunner(Settings settings, Envelopes envelopes, Producer<byte[], byte[]> producer, ResultSender sender,
      ScheduledExecutorService deadlines, Map<String, ContextJobHandler> handlers, Counters counters,
      Consumer<Event> events, Tracing tracing) {
    this.settings = settings;
    this.envelopes = envelopes;
    this.producer = producer;
    this.sender = sender;
    this.deadlines = deadlines;
    this.handlers = handlers;
    this.counters = counters;
    this.events = events;
    this.tracing = tracing;
  }

  void run(ConsumerRecord<byte[], byte[]> record) {
    Job job;
    try {
      job = Job.decode(record.value());
      if (!handlers.containsKey(job.action())) {
        throw new Job.Undecodable("no handler registered for action " + job.action());
      }
    } catch (Job.Undecodable e) {
      releaseSlot();
      deadLetter(record, e.getMessage());
      return;
    }
    RunningJob running = new RunningJob(record, job, tracing.start(record, job));
    running.context(new Context(job, () -> heartbeat(running)));
    running.enter(Thread.currentThread()); // before the watch, which may fire at once for a late job
    watch(running);
    invoke(handlers.get(job.action()), running).whenComplete((value, error) -> returned(running, value, error));
  }

  private CompletionStage<?> invoke(ContextJobHandler handler, RunningJob running) {
    Job job = running.job;
    MDC.put("job_id", job.jobId());
    MDC.put("run_id", job.runId());
    MDC.put("step", job.step());
    MDC.put("attempt", Integer.toString(job.attempt()));
    MDC.put("action", job.action());
    try (Tracing.MdcScope traced = running.span.enter()) { // the user's own spans nest under the handle span
      Object payload = Json.MAPPER.treeToValue(job.input(), Object.class);
      Object value = handler.handle(payload, running.context());
      if (value instanceof CompletionStage<?> stage) {
        running.pending(futureOf(stage));
        return stage;
      }
      return CompletableFuture.completedFuture(value);
    } catch (Throwable e) { // any throw, even an Error, must become a FAILED result, not a lost job
      return CompletableFuture.failedFuture(e);
    } finally {
      running.leave();
      for (String key : MDC_KEYS) {
        MDC.remove(key);
      }
    }
  }

  /** The future to cancel at the deadline; null for a stage that cannot be cancelled. */
  private static CompletableFuture<?> futureOf(CompletionStage<?> stage) {
    try {
      return stage.toCompletableFuture();
    } catch (UnsupportedOperationException e) {
      return null;
    }
  }

  private void returned(RunningJob running, Object value, Throwable error) {
    if (!running.answer()) {
      LOG.info("job {} ({}): the handler returned after its Timeout result; its late outcome is dropped",
          running.job.jobId(), running.job.action());
      if (running.returnedLate(counters)) {
        freeSlot(running);
      }
      return;
    }
    running.stopWatching();
    freeSlot(running);
    try (Tracing.MdcScope traced = running.span.mdc()) {
      sendOutcome(running, value, error);
    } finally {
      running.span.end();
    }
  }

  private void sendOutcome(RunningJob running, Object value, Throwable error) {
    try {
      finish(running, value, error);
    } catch (Throwable e) { // the job must still get its one result
      LOG.error("job {}: building its result failed; sending a FAILED one", running.job.jobId(), e);
      sendResult(running, failed(running, e), counters.failed);
    }
  }

  private void finish(RunningJob running, Object value, Throwable error) {
    Throwable failure = error;
    if (failure == null) {
      try {
        byte[] result = envelopes.completed(running.job, envelopes.output(value), running.startedAt, Instant.now());
        sendResult(running, result, counters.completed);
        return;
      } catch (BatonError e) { // PayloadTooLarge, SerializationError
        failure = e;
      }
    }
    sendResult(running, failed(running, failure), counters.failed);
  }

  private byte[] failed(RunningJob running, Throwable error) {
    Failure failure = Failure.of(error);
    running.span.failed(Failure.unwrap(error), failure);
    Job job = running.job;
    LOG.warn("job {} ({} attempt {}) failed: {}: {}", job.jobId(), job.action(), job.attempt(),
        failure.type(), failure.message());
    return envelopes.failed(job, failure, running.startedAt, Instant.now());
  }

  private void watch(RunningJob running) {
    long delay = Duration.between(Instant.now(), running.deadline().plus(settings.deadlineGrace())).toMillis();
    running.watch(deadlines.schedule(() -> checkDeadline(running), Math.max(0, delay), TimeUnit.MILLISECONDS));
  }

  private void checkDeadline(RunningJob running) {
    if (running.answered()) {
      return;
    }
    long late = Duration.between(running.deadline(), Instant.now()).toMillis();
    long grace = settings.deadlineGrace().toMillis();
    if (late < grace) { // ctx.heartbeat() moved the deadline
      watch(running);
      return;
    }
    if (!running.answer()) {
      return;
    }
    String stack = running.interrupt();
    boolean freed = running.abandon(counters, settings.maxAbandoned());
    if (freed) {
      freeSlot(running);
    }
    try (Tracing.MdcScope traced = running.span.mdc()) {
      answerTimeout(running, late, grace, freed, stack);
    } finally {
      running.span.end();
    }
  }

  private void answerTimeout(RunningJob running, long late, long grace, boolean freed, String stack) {
    Job job = running.job;
    LOG.warn("job {} ({} attempt {}) still running {} ms after its deadline (grace {} ms): interrupted, "
        + "answered Timeout, slot {}", job.jobId(), job.action(), job.attempt(), late, grace,
        freed ? "given to the next job" : "kept until the handler returns (max_abandoned reached)");
    Failure timeout = Failure.timeout(late, grace, stack);
    running.span.failed(null, timeout);
    sendResult(running, envelopes.failed(job, timeout, running.startedAt, Instant.now()), counters.failed);
  }

  private void sendResult(RunningJob running, byte[] result, AtomicLong count) {
    ConsumerRecord<byte[], byte[]> record = running.record;
    sender.send(new ResultSender.Outgoing(resultRecord(running, result), count::incrementAndGet),
        partitionOf(record), record.offset(), why -> refused(running, result.length, why));
  }

  /** A FAILED result small enough for any topic, for a result Kafka would not take. */
  private ResultSender.Outgoing refused(RunningJob running, int size, Exception why) {
    byte[] result = envelopes.failed(running.job, Failure.refused(size, why), running.startedAt, Instant.now());
    return new ResultSender.Outgoing(resultRecord(running, result),
        counters.failed::incrementAndGet);
  }

  private void heartbeat(RunningJob running) {
    if (running.answered()) { // an abandoned handler beating on: its job is over
      return;
    }
    Job job = running.job;
    try {
      producer.send(resultRecord(running, envelopes.heartbeat(job, running.startedAt)), (meta, e) -> {
        if (e != null) {
          LOG.warn("heartbeat of job {} not sent: {}", job.jobId(), e.toString());
        }
      });
    } catch (RuntimeException e) {
      LOG.warn("heartbeat of job {} not sent: {}", job.jobId(), e.toString());
    }
  }

  private void deadLetter(ConsumerRecord<byte[], byte[]> record, String reason) {
    LOG.warn("undecodable job at {}-{}@{} sent to {}: {}", record.topic(), record.partition(),
        record.offset(), settings.deadLetterTopic(), reason);
    ProducerRecord<byte[], byte[]> dead =
        DeadLetters.undecodable(record, settings.deadLetterTopic(), settings.groupId(), reason);
    sender.send(new ResultSender.Outgoing(dead, counters.deadLettered::incrementAndGet), partitionOf(record),
        record.offset(), why -> new ResultSender.Outgoing(DeadLetters.withoutValue(dead, why),
            counters.deadLettered::incrementAndGet));
  }

  /** A result (or heartbeat) record; its trace headers name the handle span, so the engine's result span nests under it. */
  private ProducerRecord<byte[], byte[]> resultRecord(RunningJob running, byte[] result) {
    Job job = running.job;
    ProducerRecord<byte[], byte[]> out = new ProducerRecord<>(settings.resultsTopic(),
        job.runId().getBytes(StandardCharsets.UTF_8), result);
    out.headers().add("baton-job-id", job.jobId().getBytes(StandardCharsets.UTF_8));
    running.span.inject(out.headers());
    return out;
  }

  private static TopicPartition partitionOf(ConsumerRecord<byte[], byte[]> record) {
    return new TopicPartition(record.topic(), record.partition());
  }

  private void freeSlot(RunningJob running) {
    if (running.freeSlot()) {
      releaseSlot();
    }
  }

  private void releaseSlot() {
    counters.running.decrementAndGet();
    events.accept(Event.SLOT_FREED);
  }
}
