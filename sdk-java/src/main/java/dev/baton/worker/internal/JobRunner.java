package dev.baton.worker.internal;

import dev.baton.worker.BatonError;
import dev.baton.worker.ContextJobHandler;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/**
 * Runs one job on a handler thread: decode, call the handler, await a returned CompletionStage, send the
 * result. Reports to the consumer thread through {@link Event}s, never touching the consumer itself.
 */
final class JobRunner {
  private static final Logger LOG = LoggerFactory.getLogger(JobRunner.class);
  private static final String[] MDC_KEYS = {"job_id", "run_id", "step", "attempt", "action"};

  private final Settings settings;
  private final Envelopes envelopes;
  private final Producer<byte[], byte[]> producer;
  private final Map<String, ContextJobHandler> handlers;
  private final Counters counters;
  private final Consumer<Event> events;

  JobRunner(Settings settings, Envelopes envelopes, Producer<byte[], byte[]> producer,
      Map<String, ContextJobHandler> handlers, Counters counters, Consumer<Event> events) {
    this.settings = settings;
    this.envelopes = envelopes;
    this.producer = producer;
    this.handlers = handlers;
    this.counters = counters;
    this.events = events;
  }

  void run(ConsumerRecord<byte[], byte[]> record) {
    Job job;
    try {
      job = Job.decode(record.value());
      if (!handlers.containsKey(job.action())) {
        throw new Job.Undecodable("no handler registered for action " + job.action());
      }
    } catch (Job.Undecodable e) {
      freeSlot();
      deadLetter(record, e.getMessage());
      return;
    }
    Instant startedAt = Instant.now();
    Context ctx = new Context(job, () -> heartbeat(record, job, startedAt));
    invoke(handlers.get(job.action()), job, ctx)
        .whenComplete((value, error) -> finish(record, job, startedAt, value, error));
  }

  private CompletionStage<?> invoke(ContextJobHandler handler, Job job, Context ctx) {
    MDC.put("job_id", job.jobId());
    MDC.put("run_id", job.runId());
    MDC.put("step", job.step());
    MDC.put("attempt", Integer.toString(job.attempt()));
    MDC.put("action", job.action());
    try {
      Object payload = Json.MAPPER.treeToValue(job.input(), Object.class);
      Object value = handler.handle(payload, ctx);
      return value instanceof CompletionStage<?> stage ? stage : CompletableFuture.completedFuture(value);
    } catch (Throwable e) { // any throw, even an Error, must become a FAILED result, not a lost job
      return CompletableFuture.failedFuture(e);
    } finally {
      for (String key : MDC_KEYS) {
        MDC.remove(key);
      }
    }
  }

  private void finish(ConsumerRecord<byte[], byte[]> record, Job job, Instant startedAt, Object value,
      Throwable error) {
    freeSlot();
    Instant finishedAt = Instant.now();
    byte[] result;
    boolean completed = false;
    if (error == null) {
      try {
        result = envelopes.completed(job, envelopes.output(value), startedAt, finishedAt);
        completed = true;
      } catch (BatonError e) {
        result = failed(job, e, startedAt, finishedAt);
      }
    } else {
      result = failed(job, error, startedAt, finishedAt);
    }
    boolean ok = completed;
    send(resultRecord(record, job, result), record, () -> (ok ? counters.completed : counters.failed)
        .incrementAndGet());
  }

  private byte[] failed(Job job, Throwable error, Instant startedAt, Instant finishedAt) {
    Failure failure = Failure.of(error);
    LOG.warn("job {} ({} attempt {}) failed: {}: {}", job.jobId(), job.action(), job.attempt(),
        failure.type(), failure.message());
    return envelopes.failed(job, failure, startedAt, finishedAt);
  }

  private void heartbeat(ConsumerRecord<byte[], byte[]> record, Job job, Instant startedAt) {
    try {
      producer.send(resultRecord(record, job, envelopes.heartbeat(job, startedAt)), (meta, e) -> {
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
    send(DeadLetters.undecodable(record, settings.deadLetterTopic(), settings.groupId(), reason), record,
        counters.deadLettered::incrementAndGet);
  }

  private ProducerRecord<byte[], byte[]> resultRecord(ConsumerRecord<byte[], byte[]> job, Job decoded,
      byte[] result) {
    ProducerRecord<byte[], byte[]> out = new ProducerRecord<>(settings.resultsTopic(),
        decoded.runId().getBytes(StandardCharsets.UTF_8), result);
    out.headers().add("baton-job-id", decoded.jobId().getBytes(StandardCharsets.UTF_8));
    Header trace = job.headers().lastHeader("traceparent");
    if (trace != null) {
      out.headers().add("traceparent", trace.value());
    }
    return out;
  }

  /** The job's offset becomes committable only once Kafka acknowledged what replaced it. */
  private void send(ProducerRecord<byte[], byte[]> out, ConsumerRecord<byte[], byte[]> source,
      Runnable count) {
    TopicPartition partition = new TopicPartition(source.topic(), source.partition());
    try {
      producer.send(out, (meta, e) -> {
        if (e == null) {
          count.run();
          events.accept(new Event(Event.Kind.ACKED, partition, source.offset()));
        } else {
          sendFailed(partition, source.offset(), e);
        }
      });
    } catch (RuntimeException e) {
      sendFailed(partition, source.offset(), e);
    }
  }

  private void sendFailed(TopicPartition partition, long offset, Exception e) {
    // Not committed, so the job is delivered again after a restart or rebalance: a duplicate, not a loss.
    LOG.error("result for {}@{} not sent, the job stays uncommitted: {}", partition, offset, e.toString());
    events.accept(new Event(Event.Kind.SEND_FAILED, partition, offset));
  }

  private void freeSlot() {
    counters.running.decrementAndGet();
    events.accept(Event.SLOT_FREED);
  }
}
