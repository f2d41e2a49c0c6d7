package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.baton.worker.internal.Settings;
import io.opentelemetry.api.OpenTelemetry;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Config and registration rules of docs/sdk-contract.md, with its exact messages. */
class WorkerBuilderTest {
  private static WorkerBuilder withEnv(Map<String, String> env) {
    return Worker.builder().env(env::get);
  }

  @Test
  void shouldUseDefaultsWhenNothingIsSet() {
    Settings settings = withEnv(Map.of()).settings();
    assertThat(settings.bootstrapServers()).isEqualTo("localhost:9092");
    assertThat(settings.groupId()).isEqualTo("workflow-workers");
    assertThat(settings.concurrency()).isEqualTo(8);
    assertThat(settings.topicPrefix()).isEqualTo("workflow-");
    assertThat(settings.maxPayloadBytes()).isEqualTo(1_048_576);
    assertThat(settings.topicPartitions()).isEqualTo(6);
    assertThat(settings.presenceInterval()).isEqualTo(Duration.ofSeconds(5));
    assertThat(settings.jobTopic("step1")).isEqualTo("workflow-jobs.step1");
    assertThat(settings.resultsTopic()).isEqualTo("workflow-results");
    assertThat(settings.deadLetterTopic()).isEqualTo("workflow-jobs.DLT");
    assertThat(settings.workersTopic()).isEqualTo("workflow-workers");
  }

  @Test
  void shouldReadEnvWhenOptionNotGiven() {
    Settings settings = withEnv(Map.of("BATON_KAFKA_BOOTSTRAP_SERVERS", "a:1,b:2",
        "BATON_WORKER_GROUP", "g", "BATON_WORKER_CONCURRENCY", "3", "BATON_TOPIC_PREFIX", "p-",
        "BATON_MAX_PAYLOAD_BYTES", "100", "BATON_TOPIC_PARTITIONS", "2",
        "BATON_WORKER_HEARTBEAT_INTERVAL", "0.5")).settings();
    assertThat(settings.bootstrapServers()).isEqualTo("a:1,b:2");
    assertThat(settings.groupId()).isEqualTo("g");
    assertThat(settings.concurrency()).isEqualTo(3);
    assertThat(settings.topicPrefix()).isEqualTo("p-");
    assertThat(settings.maxPayloadBytes()).isEqualTo(100);
    assertThat(settings.topicPartitions()).isEqualTo(2);
    assertThat(settings.presenceInterval()).isEqualTo(Duration.ofMillis(500));
  }

  @Test
  void shouldUseRoundTwoDefaultsWhenNothingIsSet() {
    Settings settings = withEnv(Map.of()).concurrency(3).settings();
    assertThat(settings.presenceInterval()).isEqualTo(Duration.ofSeconds(5));
    assertThat(settings.drainTimeout()).isEqualTo(Duration.ofSeconds(30));
    assertThat(settings.deadlineGrace()).isEqualTo(Duration.ofSeconds(10));
    assertThat(settings.maxAbandoned()).isEqualTo(3); // = concurrency
    assertThat(settings.topicReplicationFactor()).isEqualTo(1);
    assertThat(settings.topicMinInsyncReplicas()).isNull(); // the broker's default
  }

  @Test
  void shouldReadRoundTwoEnvWhenOptionNotGiven() {
    Settings settings = withEnv(Map.of("BATON_WORKER_DRAIN_TIMEOUT", "2.5", "BATON_WORKER_PRESENCE_INTERVAL", "0.25",
        "BATON_WORKER_DEADLINE_GRACE", "3", "BATON_WORKER_MAX_ABANDONED", "4", "BATON_TOPIC_REPLICATION_FACTOR", "3",
        "BATON_TOPIC_MIN_INSYNC_REPLICAS", "2", "BATON_WORKER_HEARTBEAT_INTERVAL", "9")).settings();
    assertThat(settings.drainTimeout()).isEqualTo(Duration.ofMillis(2500));
    assertThat(settings.presenceInterval()).as("the new name wins").isEqualTo(Duration.ofMillis(250));
    assertThat(settings.deadlineGrace()).isEqualTo(Duration.ofSeconds(3));
    assertThat(settings.maxAbandoned()).isEqualTo(4);
    assertThat(settings.topicReplicationFactor()).isEqualTo(3);
    assertThat(settings.topicMinInsyncReplicas()).isEqualTo(2);
  }

  @Test
  @SuppressWarnings("deprecation")
  void shouldStillHonourOldPresenceNamesWhenNewOnesAreNotSet() {
    assertThat(withEnv(Map.of("BATON_WORKER_HEARTBEAT_INTERVAL", "0.5")).settings().presenceInterval())
        .isEqualTo(Duration.ofMillis(500));
    assertThat(withEnv(Map.of()).heartbeatInterval(Duration.ofSeconds(2)).settings().presenceInterval())
        .isEqualTo(Duration.ofSeconds(2));
  }

  @Test
  void shouldRejectWithContractMessageWhenRoundTwoOptionInvalid() {
    assertInvalid(withEnv(Map.of()).presenceInterval(Duration.ZERO), "presence_interval must be a positive number of seconds");
    assertInvalid(withEnv(Map.of("BATON_WORKER_PRESENCE_INTERVAL", "soon")),
        "presence_interval must be a positive number of seconds");
    assertInvalid(withEnv(Map.of()).drainTimeout(Duration.ofSeconds(-1)), "drain_timeout must be a non-negative number of seconds");
    assertInvalid(withEnv(Map.of()).deadlineGrace(Duration.ofSeconds(-1)), "deadline_grace must be a non-negative number of seconds");
    assertInvalid(withEnv(Map.of()).maxAbandoned(-1), "max_abandoned must be a non-negative integer");
    assertInvalid(withEnv(Map.of()).topicReplicationFactor(0), "topic_replication_factor must be a positive integer");
    assertInvalid(withEnv(Map.of()).topicMinInsyncReplicas(0), "topic_min_insync_replicas must be a positive integer");
  }

  @Test
  void shouldUseGivenOpenTelemetryOrTheGlobalOneWhenNoneGiven() {
    OpenTelemetry mine = OpenTelemetry.noop();
    assertThat(withEnv(Map.of()).openTelemetry(mine).settings().telemetry()).isSameAs(mine);
    assertThat(withEnv(Map.of()).settings().openTelemetry()).isNull(); // looked up when the worker starts
    assertThat(withEnv(Map.of()).settings().telemetry()).isNotNull();
    assertThatThrownBy(() -> Worker.builder().openTelemetry(null)).isInstanceOf(NullPointerException.class)
        .hasMessage("openTelemetry");
  }

  @Test
  void shouldPreferExplicitOptionWhenEnvAlsoSet() {
    Settings settings = withEnv(Map.of("BATON_WORKER_CONCURRENCY", "3", "BATON_WORKER_GROUP", "env"))
        .concurrency(5).groupId("explicit").settings();
    assertThat(settings.concurrency()).isEqualTo(5);
    assertThat(settings.groupId()).isEqualTo("explicit");
  }

  @Test
  void shouldRejectWithContractMessageWhenOptionInvalid() {
    assertInvalid(withEnv(Map.of()).bootstrapServers(""), "bootstrap_servers must be a non-empty host:port list");
    assertInvalid(withEnv(Map.of()).bootstrapServers("nohost"), "bootstrap_servers must be a non-empty host:port list");
    assertInvalid(withEnv(Map.of()).groupId(" "), "group_id must be a non-empty string");
    assertInvalid(withEnv(Map.of()).concurrency(0), "concurrency must be an integer between 1 and 1000");
    assertInvalid(withEnv(Map.of()).concurrency(1001), "concurrency must be an integer between 1 and 1000");
    assertInvalid(withEnv(Map.of("BATON_WORKER_CONCURRENCY", "many")),
        "concurrency must be an integer between 1 and 1000");
    assertInvalid(withEnv(Map.of()).topicPrefix("bad prefix"), "topic_prefix may contain only [A-Za-z0-9._-]");
    assertInvalid(withEnv(Map.of()).maxPayloadBytes(0), "max_payload_bytes must be a positive integer");
    assertInvalid(withEnv(Map.of()).topicPartitions(0), "topic_partitions must be a positive integer");
  }

  private static void assertInvalid(WorkerBuilder builder, String message) {
    assertThatThrownBy(builder::build).isInstanceOf(IllegalArgumentException.class).hasMessage(message);
  }

  @Test
  void shouldRejectWithContractMessageWhenRegistrationInvalid() {
    Worker worker = withEnv(Map.of()).build();
    worker.register("step1", payload -> "Java processed: " + payload);
    worker.register("charge", (payload, ctx) -> ctx.idempotencyKey());
    assertThatThrownBy(() -> worker.register("DLT", payload -> null))
        .hasMessage("invalid action name 'DLT': use 1-200 of [A-Za-z0-9._-], not 'DLT'");
    assertThatThrownBy(() -> worker.register("a b", payload -> null))
        .hasMessage("invalid action name 'a b': use 1-200 of [A-Za-z0-9._-], not 'DLT'");
    assertThatThrownBy(() -> worker.register("x".repeat(201), payload -> null))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> worker.register("step1", payload -> null))
        .isInstanceOf(IllegalArgumentException.class).hasMessage("action 'step1' is already registered");
    assertThatThrownBy(() -> worker.register("other", (JobHandler) null))
        .isInstanceOf(IllegalArgumentException.class).hasMessage("handler for 'other' must be callable");
  }

  @Test
  void shouldHaveStableCodesWhenErrorsCreated() {
    assertThat(new NonRetryableError("x").code()).isEqualTo("BATON_NON_RETRYABLE");
    assertThat(new RetryLater(Duration.ZERO).code()).isEqualTo("BATON_RETRY_LATER");
    assertThat(new PayloadTooLarge(2, 1).code()).isEqualTo("BATON_PAYLOAD_TOO_LARGE");
    assertThat(new SerializationError("x", null).code()).isEqualTo("BATON_SERIALIZATION");
    assertThat(new NonRetryableError("x")).isInstanceOf(BatonError.class).isInstanceOf(RuntimeException.class);
    assertThat(new IdleTimeout(Duration.ofSeconds(1), new RunReport(1, 2, 3)).code()).isEqualTo("BATON_IDLE_TIMEOUT");
    assertThat(new WorkerStateError("x").code()).isEqualTo("BATON_WORKER_STATE");
    assertThat(new WorkerStateError("x")).isInstanceOf(BatonError.class);
  }
}
