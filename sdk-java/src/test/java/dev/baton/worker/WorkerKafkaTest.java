package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The behaviour matrix of the SDK contract against the real Kafka of the local stack. */
class WorkerKafkaTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

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
  void shouldSendCompletedResultWhenJobArrives() throws Exception {
    TestKafka.Reader results = kafka.reader("results");
    TestKafka.Reader presence = kafka.reader("workers");
    String traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    try (Worker worker = kafka.worker().build()) {
      worker.register("step1", payload -> "Java processed: " + payload);
      worker.startAsync();
      String raw = TestKafka.job("step1", "job-1", "run-1", "\"Hello World\"");
      kafka.send("step1", "run-1", raw, "traceparent", traceparent);

      ConsumerRecord<byte[], byte[]> record = results.await(1, WAIT).get(0);
      JsonNode result = TestKafka.parse(record.value());
      assertThat(result.get("status").asText()).isEqualTo("COMPLETED");
      assertThat(result.get("output").asText()).isEqualTo("Java processed: Hello World");
      assertThat(result.get("job_id").asText()).isEqualTo("job-1");
      assertThat(result.get("run_id").asText()).isEqualTo("run-1");
      assertThat(result.get("step").asText()).isEqualTo("s-step1");
      assertThat(result.get("attempt").asInt()).isEqualTo(1);
      assertThat(result.get("error").isNull()).isTrue();
      assertThat(result.at("/worker/id").asText()).isEqualTo(worker.id()).startsWith("java-");
      assertThat(result.at("/worker/language").asText()).isEqualTo("java");
      assertThat(result.get("finished_at").asText()).matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z");
      assertThat(new String(record.key(), "UTF-8")).isEqualTo("run-1");
      assertThat(TestKafka.header(record, "baton-job-id")).isEqualTo("job-1");
      assertThat(TestKafka.header(record, "traceparent")).isEqualTo(traceparent);
      await().atMost(WAIT).until(() -> kafka.committed("step1") == 1);
    }
    List<JsonNode> beats = presence.awaitJson(2, WAIT);
    assertThat(beats.get(0).get("status").asText()).isEqualTo("RUNNING");
    assertThat(beats.get(0).get("actions").toString()).isEqualTo("[\"step1\"]");
    await().atMost(WAIT).until(() -> presence.awaitJson(1, WAIT).stream()
        .anyMatch(b -> b.get("status").asText().equals("STOPPED")));
  }

  @Test
  void shouldAwaitCompletionStageAndSendHeartbeatWhenHandlerIsAsync() throws Exception {
    kafka.createJobTopics(3, "async");
    kafka.sendJob("async", "job-a", "{\"n\":2}");
    Worker worker = kafka.worker().build();
    worker.register("async", (payload, ctx) -> CompletableFuture.supplyAsync(() -> {
      ctx.heartbeat();
      return Map.of("key", ctx.idempotencyKey(), "input", payload, "attempt", ctx.attempt());
    }));
    RunReport report = worker.runUntilIdle(WAIT);

    assertThat(report).isEqualTo(new RunReport(1, 0, 0));
    Map<String, JsonNode> byStatus = kafka.reader("results").awaitJson(2, WAIT).stream()
        .collect(Collectors.toMap(r -> r.get("status").asText(), Function.identity()));
    assertThat(byStatus.get("HEARTBEAT").get("job_id").asText()).isEqualTo("job-a");
    assertThat(byStatus.get("COMPLETED").get("output").toString())
        .contains("\"key\":\"run-job-a:s-async\"", "\"input\":{\"n\":2}", "\"attempt\":1");
  }

  @Test
  void shouldOverlapJobsWhenConcurrencyAboveOne() throws Exception {
    int jobs = 4;
    kafka.createJobTopics(3, "slow");
    for (int i = 0; i < jobs; i++) {
      kafka.sendJob("slow", "job-" + i, Integer.toString(i));
    }
    AtomicInteger running = new AtomicInteger();
    AtomicInteger peak = new AtomicInteger();
    CountDownLatch allStarted = new CountDownLatch(jobs);
    Worker worker = kafka.worker().concurrency(jobs).build();
    worker.register("slow", payload -> {
      peak.accumulateAndGet(running.incrementAndGet(), Math::max);
      allStarted.countDown();
      // Returns only once every job is running at the same time, which a sequential worker never reaches.
      boolean overlapped = allStarted.await(20, TimeUnit.SECONDS);
      running.decrementAndGet();
      return overlapped;
    });
    RunReport report = worker.runUntilIdle(WAIT);

    assertThat(report.completed()).isEqualTo(jobs);
    assertThat(peak.get()).isEqualTo(jobs);
    assertThat(kafka.reader("results").awaitJson(jobs, WAIT))
        .allSatisfy(r -> assertThat(r.get("output").asBoolean()).isTrue());
  }

  @Test
  void shouldReportTypedFailuresWhenHandlersThrow() throws Exception {
    List<String> actions = List.of("nonretry", "later", "boom", "asyncfail", "big", "unserialisable");
    kafka.createJobTopics(1, actions.toArray(String[]::new));
    for (String action : actions) {
      kafka.sendJob(action, "job-" + action, "null");
    }
    Worker worker = kafka.worker().maxPayloadBytes(100).build();
    worker.register("nonretry", payload -> {
      throw new NonRetryableError("card declined");
    });
    worker.register("later", payload -> {
      throw new RetryLater(Duration.ofSeconds(2));
    });
    worker.register("boom", payload -> {
      throw new IllegalStateException("boom");
    });
    worker.register("asyncfail", payload -> CompletableFuture.failedFuture(new NonRetryableError("async")));
    worker.register("big", payload -> "x".repeat(200));
    worker.register("unserialisable", payload -> new Object());
    RunReport report = worker.runUntilIdle(WAIT);

    assertThat(report).isEqualTo(new RunReport(0, 6, 0));
    Map<String, JsonNode> errors = kafka.reader("results").awaitJson(6, WAIT).stream()
        .peek(r -> assertThat(r.get("status").asText()).isEqualTo("FAILED"))
        .collect(Collectors.toMap(r -> r.get("job_id").asText(), r -> r.get("error")));
    assertError(errors.get("job-nonretry"), "NonRetryableError", false, "card declined");
    assertError(errors.get("job-later"), "RetryLater", true, "retry in 2000 ms");
    assertThat(errors.get("job-later").get("retry_after_ms").asLong()).isEqualTo(2000);
    assertError(errors.get("job-boom"), "IllegalStateException", true, "boom");
    assertThat(errors.get("job-boom").get("stacktrace").asText()).contains("java.lang.IllegalStateException: boom");
    assertError(errors.get("job-asyncfail"), "NonRetryableError", false, "async");
    assertError(errors.get("job-big"), "PayloadTooLarge", false, "output is 202 bytes, over the limit of 100 bytes");
    assertThat(errors.get("job-unserialisable").get("type").asText()).isEqualTo("SerializationError");
    assertThat(errors.get("job-unserialisable").get("retryable").asBoolean()).isFalse();
  }

  private static void assertError(JsonNode error, String type, boolean retryable, String message) {
    assertThat(error.get("type").asText()).isEqualTo(type);
    assertThat(error.get("retryable").asBoolean()).isEqualTo(retryable);
    assertThat(error.get("message").asText()).isEqualTo(message);
  }

  @Test
  void shouldDeadLetterPoisonJobAndRunNextWhenJobUndecodable() throws Exception {
    kafka.createJobTopics(1, "step1");
    kafka.send("step1", "run-x", "{not json");
    kafka.sendJob("step1", "job-next", "\"after poison\"");
    Worker worker = kafka.worker().build();
    worker.register("step1", payload -> "Java processed: " + payload);
    RunReport report = worker.runUntilIdle(WAIT);

    assertThat(report).isEqualTo(new RunReport(1, 0, 1));
    ConsumerRecord<byte[], byte[]> dead = kafka.reader("jobs.DLT").await(1, WAIT).get(0);
    assertThat(new String(dead.value(), "UTF-8")).isEqualTo("{not json");
    assertThat(new String(dead.key(), "UTF-8")).isEqualTo("run-x");
    assertThat(TestKafka.header(dead, "baton-dlt-reason")).isEqualTo("undecodable");
    assertThat(TestKafka.header(dead, "kafka_dlt-exception-fqcn")).isEqualTo("Undecodable");
    assertThat(TestKafka.header(dead, "kafka_dlt-exception-message")).startsWith("malformed JSON");
    assertThat(TestKafka.header(dead, "kafka_dlt-original-topic")).isEqualTo(kafka.prefix + "jobs.step1");
    assertThat(TestKafka.header(dead, "kafka_dlt-original-consumer-group")).isEqualTo(kafka.group);
    assertThat(dead.headers().lastHeader("kafka_dlt-original-partition").value()).hasSize(4);
    assertThat(java.nio.ByteBuffer.wrap(dead.headers().lastHeader("kafka_dlt-original-offset").value()).getLong())
        .isZero();
    JsonNode next = kafka.reader("results").awaitJson(1, WAIT).get(0);
    assertThat(next.get("output").asText()).isEqualTo("Java processed: after poison");
    assertThat(kafka.committed("step1")).isEqualTo(2);
  }

  @Test
  void shouldCreateTopicsWithTheConfiguredReplicationAndMinInsyncReplicasWhenMissing() throws Exception {
    try (Worker worker = kafka.worker().topicReplicationFactor(1).topicMinInsyncReplicas(1).build()) {
      worker.register("step1", payload -> payload);
      worker.startAsync();
      String topic = kafka.prefix + "results";
      org.apache.kafka.common.config.ConfigResource resource =
          new org.apache.kafka.common.config.ConfigResource(org.apache.kafka.common.config.ConfigResource.Type.TOPIC, topic);
      var config = kafka.admin.describeConfigs(List.of(resource)).all().get(10, TimeUnit.SECONDS).get(resource);
      assertThat(config.get("min.insync.replicas").value()).isEqualTo("1");
      assertThat(config.get("min.insync.replicas").isDefault()).as("set on the topic, not the broker default").isFalse();
      assertThat(kafka.admin.describeTopics(List.of(topic)).allTopicNames().get(10, TimeUnit.SECONDS).get(topic)
          .partitions().get(0).replicas()).hasSize(1);
    }
  }

  @Test
  void shouldThrowWorkerStateErrorWhenRegisteringAfterStartOrStartingTwice() {
    try (Worker worker = kafka.worker().build()) {
      worker.register("step1", payload -> payload);
      worker.startAsync();
      assertThatThrownBy(() -> worker.register("step2", payload -> payload)).isInstanceOf(WorkerStateError.class)
          .hasMessage("register every action before the worker starts");
      assertThatThrownBy(worker::startAsync).isInstanceOf(WorkerStateError.class);
    }
  }

  @Test
  void shouldThrowIdleTimeoutWithTheCountsWhenNotIdleInTime() throws Exception {
    kafka.createJobTopics(1, "slow");
    kafka.sendJob("slow", "job-slow", "null");
    Worker worker = kafka.worker().drainTimeout(Duration.ZERO).build();
    worker.register("slow", payload -> {
      Thread.sleep(60_000);
      return null;
    });
    assertThatThrownBy(() -> worker.runUntilIdle(Duration.ofSeconds(3))).isInstanceOfSatisfying(IdleTimeout.class,
        e -> assertThat(e.report()).isEqualTo(new RunReport(0, 0, 0)));
  }

  @Test
  void shouldSendEveryResultWhenClosedWithThreeJobsInFlight() throws Exception {
    CountDownLatch started = new CountDownLatch(3);
    Worker worker = kafka.worker().concurrency(3).build();
    worker.register("work", payload -> {
      started.countDown();
      Thread.sleep(700); // the job's work, so that close() surely finds all three running
      return "done " + payload;
    });
    worker.startAsync();
    for (int i = 0; i < 3; i++) {
      kafka.sendJob("work", "job-" + i, Integer.toString(i));
    }
    assertThat(started.await(WAIT.toSeconds(), TimeUnit.SECONDS)).isTrue();
    worker.close();

    assertThat(worker.report().completed()).isEqualTo(3);
    assertThat(kafka.reader("results").awaitJson(3, WAIT))
        .extracting(r -> r.get("status").asText()).containsOnly("COMPLETED");
    assertThat(kafka.committed("work")).isEqualTo(3);
  }
}
