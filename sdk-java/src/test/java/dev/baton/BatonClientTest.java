package dev.baton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.fasterxml.jackson.databind.JsonNode;
import dev.baton.worker.BatonError;
import dev.baton.worker.NonRetryableError;
import dev.baton.worker.Worker;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * {@link BatonClient} against a real {@code baton server} process and a Java worker of this SDK running the
 * steps: {@code clt.echo} answers, {@code clt.picky} fails non-retryably unless its input is {@code {"fixed": true}},
 * and nobody runs {@code clt.nobody}, so its runs stay open.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BatonClientTest {
  private static final Duration RUN_TIMEOUT = Duration.ofSeconds(60);

  private Orchestrator orchestrator;
  private Worker worker;
  private BatonClient client;

  @BeforeAll
  void start() throws Exception {
    orchestrator = Orchestrator.start(Map.of());
    worker = orchestrator.worker().build();
    worker.register("clt.echo", payload -> "Java processed: " + payload);
    worker.register("clt.picky", payload -> {
      if (payload instanceof Map<?, ?> map && Boolean.TRUE.equals(map.get("fixed"))) {
        return "fixed";
      }
      throw new NonRetryableError("input is not fixed: " + payload);
    });
    worker.startAsync();
    client = BatonClient.builder().url(orchestrator.url).build();
  }

  @AfterAll
  void stop() {
    if (client != null) {
      client.close();
    }
    if (worker != null) {
      worker.close();
    }
    if (orchestrator != null) {
      orchestrator.close();
    }
  }

  private String define(String action) {
    String id = "clt-" + UUID.randomUUID().toString().substring(0, 8);
    JsonNode stored = client.define(Map.of("id", id, "retry", Map.of("max_retries", 0),
        "steps", List.of(Map.of("name", "s", "action", action))));
    assertThat(stored.get("id").asText()).isEqualTo(id);
    assertThat(stored.get("version").asInt()).isEqualTo(1);
    return id;
  }

  /** A FAILED run of clt.picky and its open dead letter. */
  private JsonNode deadLetter(String workflowId) {
    String runId = client.trigger(workflowId, Map.of("fixed", false)).get("run_id").asText();
    assertThat(client.waitForRun(runId, RUN_TIMEOUT).get("status").asText()).isEqualTo("FAILED");
    List<JsonNode> open = client.listDeadLetters("OPEN", workflowId, 50);
    assertThat(open).hasSize(1);
    assertThat(open.get(0).get("run_id").asText()).isEqualTo(runId);
    return open.get(0);
  }

  @Test
  void shouldReturnTheSameRunWhenTriggerIsReplayedAndConflictWhenTheBodyDiffers() {
    String workflowId = define("clt.echo");
    String key = "order-" + UUID.randomUUID();
    JsonNode first = client.trigger(workflowId, "Hello World", key);
    assertThat(first.get("workflow_id").asText()).isEqualTo(workflowId);
    assertThat(first.get("workflow_version").asInt()).isEqualTo(1);
    assertThat(first.get("idempotency_key").asText()).isEqualTo(key);
    assertThat(first.has("links")).isTrue();

    JsonNode replay = client.trigger(workflowId, "Hello World", key);
    assertThat(replay.get("run_id")).isEqualTo(first.get("run_id"));
    Conflict conflict = catchThrowableOfType(Conflict.class, () -> client.trigger(workflowId, "Other", key));
    assertThat(conflict.status()).isEqualTo(409);
    assertThat(conflict.errorCode()).isEqualTo("idempotency_key_reused");
    assertThat(conflict.code()).isEqualTo(ApiError.CODE);
    assertThat(conflict.details().get("run_id")).isEqualTo(first.get("run_id"));
    assertThat(conflict).isInstanceOf(ApiError.class).isInstanceOf(BatonError.class)
        .hasMessageStartingWith("409 idempotency_key_reused: ");

    JsonNode run = client.waitForRun(first.get("run_id").asText(), RUN_TIMEOUT);
    assertThat(run.get("status").asText()).isEqualTo("COMPLETED");
    assertThat(run.get("output").asText()).isEqualTo("Java processed: Hello World");
    assertThat(client.getRun(first.get("run_id").asText()).get("version")).isEqualTo(run.get("version"));
  }

  @Test
  void shouldAnswerWithTheFinishedRunWhenTriggeredWithWait() {
    String workflowId = define("clt.echo");
    JsonNode run = client.trigger(workflowId, Map.of("n", 1), null, RUN_TIMEOUT);
    assertThat(run.get("status").asText()).isEqualTo("COMPLETED");
    assertThat(run.get("output").asText()).isEqualTo("Java processed: {n=1}");
    assertThat(run.at("/steps/0/attempts/0/worker/language").asText()).isEqualTo("java");
  }

  @Test
  void shouldListRunsWhenFilteredByWorkflowAndStatus() {
    String workflowId = define("clt.echo");
    for (int i = 0; i < 3; i++) {
      assertThat(client.trigger(workflowId, i, null, RUN_TIMEOUT).get("status").asText()).isEqualTo("COMPLETED");
    }
    String open = define("clt.nobody");
    client.trigger(open, null);

    List<JsonNode> completed = client.listRuns(workflowId, "COMPLETED", 50);
    assertThat(completed).hasSize(3).allSatisfy(r -> {
      assertThat(r.get("workflow_id").asText()).isEqualTo(workflowId);
      assertThat(r.get("status").asText()).isEqualTo("COMPLETED");
    });
    assertThat(client.listRuns(workflowId, null, 2)).hasSize(2);
    assertThat(client.listRuns(workflowId, "FAILED", 50)).isEmpty();
    assertThat(client.listRuns(open, null, 50)).hasSize(1)
        .allSatisfy(r -> assertThat(r.get("status").asText()).isIn("PENDING", "RUNNING"));
    assertThat(client.listRuns()).isNotEmpty();
  }

  @Test
  void shouldCompleteTheRunWhenADeadLetterIsRedrivenWithAFixedInput() {
    String workflowId = define("clt.picky");
    JsonNode dead = deadLetter(workflowId);
    assertThat(dead.get("error").get("type").asText()).isEqualTo("NonRetryableError");
    assertThat(dead.get("input").get("fixed").asBoolean()).isFalse();

    client.redrive(dead.get("id").asLong(), Map.of("fixed", true));
    JsonNode run = client.waitForRun(dead.get("run_id").asText(), RUN_TIMEOUT);
    assertThat(run.get("status").asText()).isEqualTo("COMPLETED");
    assertThat(run.get("output").asText()).isEqualTo("fixed");
    assertThat(client.listDeadLetters("OPEN", workflowId, 50)).isEmpty();
    assertThat(client.listDeadLetters("REDRIVEN", workflowId, 50)).extracting(d -> d.get("id").asLong())
        .containsExactly(dead.get("id").asLong());
    Conflict closed = catchThrowableOfType(Conflict.class, () -> client.redrive(dead.get("id").asLong()));
    assertThat(closed.errorCode()).isEqualTo("dead_letter_closed");
  }

  @Test
  void shouldCloseTheDeadLetterWhenDiscarded() {
    String workflowId = define("clt.picky");
    long id = deadLetter(workflowId).get("id").asLong();
    client.discard(id);
    assertThat(client.listDeadLetters("OPEN", workflowId, 50)).isEmpty();
    assertThat(client.listDeadLetters("DISCARDED", workflowId, 50)).extracting(d -> d.get("id").asLong())
        .containsExactly(id);
    NotFound unknown = catchThrowableOfType(NotFound.class, () -> client.discard(1L << 40));
    assertThat(unknown.errorCode()).isEqualTo("dead_letter_not_found");
  }

  @Test
  void shouldReopenTheFailedStepsWhenAFailedRunIsRetried() {
    String workflowId = define("clt.picky");
    String runId = deadLetter(workflowId).get("run_id").asText();
    JsonNode retried = client.retry(runId);
    assertThat(retried.get("status").asText()).isEqualTo("RUNNING");
    assertThat(retried.get("reopened_steps").toString()).isEqualTo("[\"s\"]");
    // The input is still not fixed: the step fails again.
    assertThat(client.waitForRun(runId, RUN_TIMEOUT).at("/steps/0/attempts").size()).isEqualTo(2);
  }

  @Test
  void shouldThrowWaitTimeoutWithTheRunWhenItDoesNotFinishInTime() {
    String workflowId = define("clt.nobody");
    JsonNode waited = client.trigger(workflowId, "x", null, Duration.ofMillis(200));
    assertThat(waited.get("status").asText()).isIn("PENDING", "RUNNING"); // the server's 202
    String runId = waited.get("run_id").asText();

    long started = System.nanoTime();
    WaitTimeout timeout = catchThrowableOfType(WaitTimeout.class,
        () -> client.waitForRun(runId, Duration.ofSeconds(1)));
    Duration took = Duration.ofNanos(System.nanoTime() - started);
    assertThat(took).isBetween(Duration.ofMillis(950), Duration.ofSeconds(10));
    assertThat(timeout.code()).isEqualTo(WaitTimeout.CODE);
    assertThat(timeout.run().get("run_id").asText()).isEqualTo(runId);
    assertThat(timeout.run().get("status").asText()).isIn("PENDING", "RUNNING");

    assertThat(client.cancel(runId).get("status").asText()).isEqualTo("CANCELLED");
    assertThat(client.waitForRun(runId, Duration.ofSeconds(5)).get("status").asText()).isEqualTo("CANCELLED");
    Conflict again = catchThrowableOfType(Conflict.class, () -> client.cancel(runId));
    assertThat(again.errorCode()).isEqualTo("run_not_cancellable");
  }

  @Test
  void shouldSendOnAFreshConnectionWhenTheServerClosedTheIdleOne() throws Exception {
    String workflowId = define("clt.echo");
    // Not a wait for a condition: the idle time itself is the case. The server (uvicorn) closes a
    // keep-alive connection idle for 5 s; the next request, a POST the JDK would not retry, must not be
    // sent on it.
    Thread.sleep(6_000);
    assertThat(client.trigger(workflowId, "after idle").get("run_id").asText()).isNotEmpty();
  }

  @Test
  void shouldThrowTypedErrorsWhenIdsAreUnknownOrRequestsInvalid() {
    NotFound run = catchThrowableOfType(NotFound.class, () -> client.getRun(UUID.randomUUID().toString()));
    assertThat(run.status()).isEqualTo(404);
    assertThat(run.errorCode()).isEqualTo("run_not_found");
    assertThat(run.message()).contains("does not exist");
    String missing = "clt-missing-" + UUID.randomUUID();
    NotFound workflow = catchThrowableOfType(NotFound.class, () -> client.trigger(missing, 1));
    assertThat(workflow.errorCode()).isEqualTo("workflow_not_found");

    ValidationFailed invalid = catchThrowableOfType(ValidationFailed.class, () -> client.define(Map.of(
        "id", "clt-bad", "steps", List.of(Map.of("name", "a", "action", "x", "depends_on", List.of("nope"))))));
    assertThat(invalid.status()).isEqualTo(422);
    assertThat(invalid.errorCode()).isEqualTo("invalid_definition");
    assertThat(invalid.message()).contains("nope");

    String workflowId = define("clt.echo");
    RequestTooLarge big = catchThrowableOfType(RequestTooLarge.class,
        () -> client.trigger(workflowId, "x".repeat(1_100_000)));
    assertThat(big.status()).isEqualTo(413);
    assertThat(big.errorCode()).isEqualTo("payload_too_large");
  }
}
