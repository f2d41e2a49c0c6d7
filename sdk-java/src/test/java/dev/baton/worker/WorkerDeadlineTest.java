package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Deadlines in the worker: a handler still running past its job's deadline plus the grace is interrupted
 * and answered {@code Timeout}, its offset moves on, and its slot goes to the next job (up to
 * {@code maxAbandoned}); the presence heartbeat counts the handlers that never returned.
 */
class WorkerDeadlineTest {
  private static final Duration WAIT = Duration.ofSeconds(30);
  private static final Duration STEP_TIMEOUT = Duration.ofSeconds(2);
  private static final Duration GRACE = Duration.ofSeconds(1);

  private final CountDownLatch release = new CountDownLatch(1);
  private TestKafka kafka;

  @BeforeEach
  void setUp() throws Exception {
    kafka = new TestKafka();
    kafka.createJobTopics(1, "work");
  }

  @AfterEach
  void tearDown() throws Exception {
    release.countDown();
    kafka.close();
  }

  @Test
  void shouldCompleteNormalJobsInTheSameGroupWhenTwoHandlersNeverReturn() throws Exception {
    TestKafka.Reader results = kafka.reader("results");
    TestKafka.Reader presence = kafka.reader("workers");
    try (Worker worker = worker(2, 2)) {
      worker.startAsync();
      Instant sent = sendStuckThenNormal(2, 20);
      List<JsonNode> got = results.awaitJson(22, WAIT);
      Duration took = Duration.between(sent, Instant.now());

      assertThat(took).as("20 jobs behind two stuck ones").isLessThan(STEP_TIMEOUT.plus(GRACE).multipliedBy(4));
      Map<String, JsonNode> byJob = got.stream().collect(Collectors.toMap(r -> r.get("job_id").asText(), Function.identity()));
      for (String stuck : List.of("stuck-0", "stuck-1")) {
        JsonNode error = byJob.get(stuck).get("error");
        assertThat(error.get("type").asText()).isEqualTo("Timeout");
        assertThat(error.get("retryable").asBoolean()).isTrue();
        assertThat(error.get("message").asText())
            .matches("handler still running \\d+ ms after the job's deadline \\(grace 1000 ms\\); abandoned");
        assertThat(error.get("stacktrace").asText()).contains("awaitIgnoringInterrupts");
      }
      assertThat(got).filteredOn(r -> r.get("job_id").asText().startsWith("normal-"))
          .hasSize(20).allSatisfy(r -> assertThat(r.get("status").asText()).isEqualTo("COMPLETED"));
      await().atMost(WAIT).until(() -> kafka.committed("work") == 22);
      assertThat(onlyMember().clientId()).as("still the original member of the group").isEqualTo(worker.id());
      awaitPresence(presence, 2);

      release.countDown(); // the abandoned handlers return now: their late outcomes are dropped
      awaitPresence(presence, 0);
      assertThat(results.awaitJson(22, WAIT)).hasSize(22);
    }
  }

  @Test
  void shouldAnswerTimeoutButKeepTheSlotWhenMaxAbandonedIsReached() throws Exception {
    TestKafka.Reader results = kafka.reader("results");
    TestKafka.Reader presence = kafka.reader("workers");
    try (Worker worker = worker(2, 1)) {
      worker.startAsync();
      sendStuckThenNormal(2, 5);
      List<JsonNode> got = results.awaitJson(7, WAIT);

      assertThat(got).filteredOn(r -> r.get("job_id").asText().startsWith("stuck-"))
          .extracting(r -> r.at("/error/type").asText()).containsExactly("Timeout", "Timeout");
      assertThat(got).filteredOn(r -> r.get("job_id").asText().startsWith("normal-")).hasSize(5);
      await().atMost(WAIT).until(() -> kafka.committed("work") == 7);
      awaitPresence(presence, 2);
    }
  }

  @Test
  void shouldLetTheHandlerRunPastTheFirstDeadlineWhenItHeartbeats() throws Exception {
    try (Worker worker = worker(1, 1)) {
      worker.register("beating", (payload, ctx) -> {
        for (int i = 0; i < 8; i++) {
          ctx.heartbeat(); // each moves the deadline to now + timeout_ms (1 s)
          Thread.sleep(300);
        }
        return "done";
      });
      worker.startAsync();
      String job = TestKafka.jobWithDeadline("beating", "beat-1", "null", Instant.now().plusSeconds(1))
          .replace("\"timeout_ms\":300000", "\"timeout_ms\":1000");
      kafka.send("beating", "run-beat-1", job);

      JsonNode result = kafka.reader("results").awaitJson(9, WAIT).stream()
          .filter(r -> !r.get("status").asText().equals("HEARTBEAT")).findFirst().orElseThrow();
      assertThat(result.get("status").asText()).isEqualTo("COMPLETED");
    }
  }

  private Worker worker(int concurrency, int maxAbandoned) {
    Worker worker = kafka.worker().concurrency(concurrency).maxAbandoned(maxAbandoned).deadlineGrace(GRACE)
        .presenceInterval(Duration.ofMillis(200)).build();
    worker.register("work", payload -> {
      if ("stuck".equals(payload)) {
        awaitIgnoringInterrupts();
        return "late";
      }
      return "ok " + payload;
    });
    return worker;
  }

  /** Jobs on the one partition of "work": the stuck ones first, due in one step timeout. */
  private Instant sendStuckThenNormal(int stuck, int normal) {
    Instant sent = Instant.now();
    for (int i = 0; i < stuck; i++) {
      kafka.send("work", "run-stuck-" + i,
          TestKafka.jobWithDeadline("work", "stuck-" + i, "\"stuck\"", sent.plus(STEP_TIMEOUT)));
    }
    for (int i = 0; i < normal; i++) {
      kafka.send("work", "run-normal-" + i,
          TestKafka.jobWithDeadline("work", "normal-" + i, Integer.toString(i), Instant.now().plusSeconds(60)));
    }
    return sent;
  }

  /** A handler that never stops by itself: it swallows the worker's interrupt. */
  private void awaitIgnoringInterrupts() {
    while (true) {
      try {
        release.await();
        return;
      } catch (InterruptedException e) {
        // ignored on purpose: this is the handler the worker cannot stop
      }
    }
  }

  private void awaitPresence(TestKafka.Reader presence, int stuckSlots) {
    await().atMost(WAIT).until(() -> {
      List<JsonNode> beats = presence.awaitJson(1, WAIT);
      return beats.get(beats.size() - 1).path("stuck_slots").asInt(-1) == stuckSlots;
    });
  }

  private MemberDescription onlyMember() throws Exception {
    ConsumerGroupDescription group = kafka.admin.describeConsumerGroups(List.of(kafka.group))
        .describedGroups().get(kafka.group).get(5, TimeUnit.SECONDS);
    assertThat(group.members()).hasSize(1);
    return group.members().iterator().next();
  }
}
