package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Whatever a handler throws or returns, its job ends in exactly one bounded result, the next job on the
 * same partition completes, and the committed offsets move past both (a restarted worker runs nothing).
 */
class WorkerOutcomeTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final int MESSAGE_BOUND = 4096;
  private static final int STACK_BOUND = 16384;

  /** action → what its handler does with any payload but "normal". */
  private static final Map<String, JobHandler> BAD = new LinkedHashMap<>();

  static {
    BAD.put("stackoverflow", payload -> recurse(0));
    BAD.put("oom", payload -> {
      throw new OutOfMemoryError("thrown by user code");
    });
    BAD.put("assertion", payload -> {
      throw new AssertionError("invariant broken");
    });
    BAD.put("messagethrows", payload -> {
      throw new BadMessage();
    });
    BAD.put("tostringthrows", payload -> {
      throw new BadToString();
    });
    BAD.put("throwable", payload -> sneakyThrow(new Throwable("not an Exception nor an Error")));
    BAD.put("unencodable", payload -> selfReferencing());
    BAD.put("surrogateoutput", payload -> Map.of("text", "a\uD800b"));
    BAD.put("surrogatemessage", payload -> {
      throw new IllegalArgumentException("bad \uDC00 char");
    });
    BAD.put("hugemessage", payload -> {
      throw new IllegalStateException("m".repeat(1_000_000));
    });
    BAD.put("toolarge", payload -> "x".repeat(5000));
  }

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
  void shouldSendOneBoundedResultPerJobAndRunNothingAgainWhenHandlersMisbehave() throws Exception {
    kafka.createJobTopics(1, BAD.keySet().toArray(String[]::new));
    for (String action : BAD.keySet()) {
      kafka.sendJob(action, action + "-bad", "\"bad\"");
      kafka.sendJob(action, action + "-next", "\"normal\"");
    }
    Map<String, AtomicInteger> ledger = new ConcurrentHashMap<>();
    RunReport first = worker(ledger).runUntilIdle(WAIT);

    assertThat(first).isEqualTo(new RunReport(BAD.size(), BAD.size(), 0));
    Map<String, List<JsonNode>> byJob = new HashMap<>();
    kafka.reader("results").awaitJson(2 * BAD.size(), WAIT)
        .forEach(r -> byJob.computeIfAbsent(r.get("job_id").asText(), k -> new ArrayList<>()).add(r));
    for (String action : BAD.keySet()) {
      assertThat(byJob.get(action + "-bad")).as("results of %s-bad", action).hasSize(1);
      assertThat(byJob.get(action + "-next")).as("results of %s-next", action).hasSize(1)
          .allSatisfy(r -> assertThat(r.get("status").asText()).isEqualTo("COMPLETED"));
      JsonNode bad = byJob.get(action + "-bad").get(0);
      assertThat(bad.get("status").asText()).as(action).isEqualTo("FAILED");
      assertBounded(bad.get("error"));
    }
    assertThat(type(byJob, "stackoverflow")).isEqualTo("StackOverflowError");
    assertThat(error(byJob, "stackoverflow").get("stacktrace").asText()).matches("(?s).* …\\[cut \\d+ bytes]$");
    assertThat(type(byJob, "oom")).isEqualTo("OutOfMemoryError");
    assertThat(type(byJob, "assertion")).isEqualTo("AssertionError");
    assertThat(type(byJob, "messagethrows")).isEqualTo("BadMessage");
    assertThat(error(byJob, "messagethrows").get("message").asText()).contains("getMessage() threw");
    assertThat(type(byJob, "tostringthrows")).isEqualTo("BadToString");
    assertThat(error(byJob, "tostringthrows").get("stacktrace").asText()).contains("recurse", "BadToString");
    assertThat(type(byJob, "throwable")).isEqualTo("Throwable");
    assertThat(type(byJob, "unencodable")).isEqualTo("SerializationError");
    assertThat(error(byJob, "unencodable").get("retryable").asBoolean()).isFalse();
    assertThat(type(byJob, "surrogateoutput")).isEqualTo("SerializationError");
    assertThat(error(byJob, "surrogatemessage").get("message").asText()).isEqualTo("bad \uFFFD char");
    String huge = error(byJob, "hugemessage").get("message").asText();
    int kept = huge.indexOf(" …[cut ");
    assertThat(huge).endsWith(" …[cut " + (1_000_000 - kept) + " bytes]");
    assertThat(type(byJob, "toolarge")).isEqualTo("PayloadTooLarge");

    RunReport restarted = worker(ledger).runUntilIdle(WAIT);
    assertThat(restarted).as("a restart runs no job again").isEqualTo(new RunReport(0, 0, 0));
    assertThat(ledger).hasSize(2 * BAD.size()).allSatisfy((job, runs) -> assertThat(runs.get()).as(job).isEqualTo(1));
  }

  private Worker worker(Map<String, AtomicInteger> ledger) {
    Worker worker = kafka.worker().maxPayloadBytes(1000).build();
    BAD.forEach((action, bad) -> worker.register(action, (payload, ctx) -> {
      ledger.computeIfAbsent(ctx.jobId(), k -> new AtomicInteger()).incrementAndGet();
      return "normal".equals(payload) ? "ok" : bad.handle(payload);
    }));
    return worker;
  }

  private static void assertBounded(JsonNode error) {
    assertThat(error.get("message").asText().getBytes(StandardCharsets.UTF_8).length).isLessThanOrEqualTo(MESSAGE_BOUND);
    if (!error.get("stacktrace").isNull()) {
      assertThat(error.get("stacktrace").asText().getBytes(StandardCharsets.UTF_8).length)
          .isLessThanOrEqualTo(STACK_BOUND);
    }
  }

  private static JsonNode error(Map<String, List<JsonNode>> byJob, String action) {
    return byJob.get(action + "-bad").get(0).get("error");
  }

  private static String type(Map<String, List<JsonNode>> byJob, String action) {
    return error(byJob, action).get("type").asText();
  }

  private static int recurse(int depth) {
    return recurse(depth + 1) + 1;
  }

  private static Map<String, Object> selfReferencing() {
    Map<String, Object> map = new HashMap<>();
    map.put("self", map);
    return map;
  }

  @SuppressWarnings("unchecked")
  private static <T extends Throwable> Object sneakyThrow(Throwable thrown) throws T {
    throw (T) thrown;
  }

  static final class BadMessage extends RuntimeException {
    private static final long serialVersionUID = 1L;

    @Override
    public String getMessage() {
      throw new IllegalStateException("no message for you");
    }
  }

  static final class BadToString extends RuntimeException {
    private static final long serialVersionUID = 1L;

    BadToString() {
      super("has a message");
      setStackTrace(new StackTraceElement[] {new StackTraceElement("Here", "recurse", "Here.java", 1)});
    }

    @Override
    public String toString() {
      throw new IllegalStateException("no toString for you");
    }
  }
}
