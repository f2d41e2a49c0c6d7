package dev.baton.worker.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import dev.baton.worker.NonRetryableError;
import dev.baton.worker.PayloadTooLarge;
import dev.baton.worker.RetryLater;
import dev.baton.worker.SerializationError;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The shared {@code protocol/} vectors and schemas: the Java codec must agree with the other SDKs. */
class ProtocolVectorsTest {
  private static final Path PROTOCOL = Path.of("..", "protocol");
  private static final WorkerIdentity IDENTITY = new WorkerIdentity("java-host-1-ab12", "host", 1);

  static JsonNode load(String file) throws Exception {
    return Json.MAPPER.readTree(Files.readAllBytes(PROTOCOL.resolve(file)));
  }

  static Stream<Arguments> validJobs() throws Exception {
    return cases(load("vectors/vectors.json").at("/jobs/valid"));
  }

  static Stream<Arguments> invalidJobs() throws Exception {
    return cases(load("vectors/vectors.json").at("/jobs/invalid"));
  }

  private static Stream<Arguments> cases(JsonNode list) {
    List<Arguments> args = new ArrayList<>();
    list.forEach(v -> args.add(Arguments.of(v.get("name").asText(), v)));
    return args.stream();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("validJobs")
  void shouldDecodeJobWhenVectorIsValid(String name, JsonNode vector) throws Exception {
    Job job = Job.decode(vector.get("raw").asText().getBytes(StandardCharsets.UTF_8));
    JsonNode expect = vector.get("expect");
    assertThat(job.jobId()).isEqualTo(expect.get("job_id").asText());
    assertThat(job.runId()).isEqualTo(expect.get("run_id").asText());
    assertThat(job.workflowId()).isEqualTo(expect.get("workflow_id").asText());
    assertThat(job.workflowVersion()).isEqualTo(expect.get("workflow_version").asInt());
    assertThat(job.step()).isEqualTo(expect.get("step").asText());
    assertThat(job.action()).isEqualTo(expect.get("action").asText());
    assertThat(job.attempt()).isEqualTo(expect.get("attempt").asInt());
    assertThat(job.maxAttempts()).isEqualTo(expect.get("max_attempts").asInt());
    assertThat(job.input()).isEqualTo(expect.get("input"));
    assertThat(job.deadline()).isEqualTo(Instant.parse(expect.get("deadline").asText()));
    assertThat(job.createdAt()).isEqualTo(Instant.parse(expect.get("created_at").asText()));
    assertThat(job.timeoutMs()).isEqualTo(expect.has("timeout_ms") ? expect.get("timeout_ms").asLong() : null);
    assertThat(job.idempotencyKey()).isEqualTo(job.runId() + ":" + job.step());
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("invalidJobs")
  void shouldRejectJobWhenVectorIsInvalid(String name, JsonNode vector) {
    assertThatThrownBy(() -> Job.decode(vector.get("raw").asText().getBytes(StandardCharsets.UTF_8)))
        .isInstanceOf(Job.Undecodable.class);
  }

  @Test
  void shouldValidateEveryResultKindWhenEncoded() throws Exception {
    JsonNode schema = load("schemas/result.schema.json");
    Job job = Job.decode(load("vectors/vectors.json").at("/jobs/valid/1/raw").asText()
        .getBytes(StandardCharsets.UTF_8));
    Envelopes envelopes = new Envelopes(IDENTITY, 1024);
    Instant start = Instant.parse("2026-11-23T15:00:00.010Z");
    Instant end = Instant.parse("2026-11-23T15:00:00.012Z");
    List<byte[]> results = List.of(
        envelopes.completed(job, envelopes.output(Map.of("total", 3)), start, end),
        envelopes.completed(job, envelopes.output(null), start, end),
        envelopes.failed(job, Failure.of(new IllegalStateException("boom")), start, end),
        envelopes.failed(job, Failure.of(new NonRetryableError("card declined")), start, end),
        envelopes.failed(job, Failure.of(new RetryLater(Duration.ofSeconds(30))), start, end),
        envelopes.heartbeat(job, start));
    for (byte[] result : results) {
      JsonNode node = Json.MAPPER.readTree(result);
      assertThat(MiniSchema.errors(schema, node)).as(node.toString()).isEmpty();
      assertThat(node.at("/worker/language").asText()).isEqualTo("java");
      assertThat(node.get("job_id").asText()).isEqualTo(job.jobId());
    }
    JsonNode retry = Json.MAPPER.readTree(results.get(4));
    assertThat(retry.at("/error/retry_after_ms").asLong()).isEqualTo(30_000);
    assertThat(retry.at("/error/message").asText()).isEqualTo("retry in 30000 ms");
    assertThat(Json.MAPPER.readTree(results.get(0)).get("started_at").asText())
        .isEqualTo("2026-11-23T15:00:00.010Z");
  }

  @Test
  void shouldValidateWhenPresenceHeartbeatEncoded() throws Exception {
    JsonNode schema = load("schemas/worker-heartbeat.schema.json");
    Envelopes envelopes = new Envelopes(IDENTITY, 1024);
    for (String status : List.of("RUNNING", "STOPPED")) {
      JsonNode beat = Json.MAPPER.readTree(
          envelopes.presence(status, "workflow-workers", List.of("step1"), 8, 2, 1, Instant.now()));
      assertThat(MiniSchema.errors(schema, beat)).as(beat.toString()).isEmpty();
    }
  }

  @Test
  void shouldAcceptResultVectorsWhenCheckedAgainstSchema() throws Exception {
    JsonNode schema = load("schemas/result.schema.json");
    for (JsonNode vector : load("vectors/vectors.json").at("/results/valid")) {
      assertThat(MiniSchema.errors(schema, Json.MAPPER.readTree(vector.get("raw").asText())))
          .as(vector.get("name").asText()).isEmpty();
    }
    for (JsonNode vector : load("vectors/vectors.json").at("/results/invalid")) {
      String raw = vector.get("raw").asText();
      boolean rejected;
      try {
        rejected = !MiniSchema.errors(schema, Json.MAPPER.readTree(raw)).isEmpty();
      } catch (Exception e) {
        rejected = true;
      }
      assertThat(rejected).as(vector.get("name").asText()).isTrue();
    }
  }

  @Test
  void shouldFailTypedWhenOutputTooLargeOrNotSerialisable() {
    Envelopes envelopes = new Envelopes(IDENTITY, 10);
    assertThatThrownBy(() -> envelopes.output("x".repeat(20)))
        .isInstanceOf(PayloadTooLarge.class).hasMessageContaining("over the limit of 10 bytes");
    assertThatThrownBy(() -> envelopes.output(new Object()))
        .isInstanceOf(SerializationError.class);
    assertThat(Failure.of(new PayloadTooLarge(20, 10)).retryable()).isFalse();
    assertThat(Failure.of(new PayloadTooLarge(20, 10)).type()).isEqualTo("PayloadTooLarge");
    assertThat(Failure.of(new SerializationError("x", null)).type()).isEqualTo("SerializationError");
  }
}
