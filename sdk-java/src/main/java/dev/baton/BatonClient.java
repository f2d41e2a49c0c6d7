package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;
import dev.baton.Http.Request;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A client of the orchestrator's HTTP API over one {@link java.net.http.HttpClient} (one connection pool,
 * reused). Answers are Jackson {@link JsonNode}s, as the API's OpenAPI ({@code /openapi.json}) describes
 * them; failures throw the {@link ApiError} subclasses. Thread-safe; close it to release its connections.
 *
 * <pre>{@code
 * try (BatonClient client = BatonClient.builder().build()) {   // BATON_API_URL, BATON_API_KEY
 *   JsonNode run = client.trigger("order", Map.of("id", 42), "order-42", Duration.ofSeconds(30));
 * }
 * }</pre>
 */
public final class BatonClient implements AutoCloseable {
  /** The run statuses {@link #waitForRun} stops at. */
  public static final Set<String> TERMINAL = Set.of("COMPLETED", "FAILED", "CANCELLED");

  // Per long poll: below the server's cap (300 s) and the idle timeout of most proxies.
  static final Duration LONG_POLL_MAX = Duration.ofSeconds(60);
  static final int PAGE_SIZE = 500; // the API's largest page

  private final Http http;
  private final String url;
  private final Duration timeout;

  BatonClient(String url, String apiKey, Duration timeout) {
    this.url = url;
    this.timeout = timeout;
    this.http = new Http(url, apiKey, timeout);
  }

  public static BatonClientBuilder builder() {
    return new BatonClientBuilder();
  }

  /** The base URL requests go to (no trailing slash). */
  public String url() {
    return url;
  }

  public Duration timeout() {
    return timeout;
  }

  /**
   * {@code POST /workflow}: stores a definition (a {@code Map}, {@code JsonNode} or any Jackson-writable
   * value; a new version when the id exists) and returns the stored definition.
   */
  public JsonNode define(Object definition) {
    return http.send(json("/workflow", definition, "definition")).body();
  }

  /** {@link #trigger(String, Object, String, Duration)} without a key or a wait. */
  public JsonNode trigger(String workflowId, Object input) {
    return trigger(workflowId, input, null, null);
  }

  /** {@link #trigger(String, Object, String, Duration)} without a wait. */
  public JsonNode trigger(String workflowId, Object input, String idempotencyKey) {
    return trigger(workflowId, input, idempotencyKey, null);
  }

  /**
   * {@code POST /workflow/{id}/trigger}: starts a run with {@code input} (any JSON value, null included). A
   * replay of {@code idempotencyKey} (null: none) returns the same run; the same key with another input is a
   * {@link Conflict}. Without {@code wait} (null) the answer is {@code run_id}, {@code workflow_id},
   * {@code workflow_version}, {@code idempotency_key}, {@code created_at}, {@code links}; with it, the run's
   * detail once terminal, or as it stands when the wait ends (check {@code status}).
   */
  public JsonNode trigger(String workflowId, Object input, String idempotencyKey, Duration wait) {
    String path = "/workflow/" + Http.segment("workflowId", workflowId) + "/trigger";
    Duration waiting = wait == null ? Duration.ZERO : nonNegative("wait", wait);
    Map<String, String> query = wait == null ? Map.of() : Map.of("wait", Http.seconds(waiting));
    byte[] body = Http.json(Collections.singletonMap("input", input), "input");
    return http.send(new Request("POST", path, query, body, idempotencyKey, waiting)).body();
  }

  /** {@code GET /workflow/run/{id}}: {@code status}, {@code output}, {@code version}, {@code steps[].attempts[]}... */
  public JsonNode getRun(String runId) {
    return Http.expect(http.send(Request.of("GET", runPath(runId))), "status");
  }

  /**
   * The run once COMPLETED, FAILED or CANCELLED, by long polls ({@code GET /workflow/run/{id}?wait=}) of at
   * most 60 s each; throws {@link WaitTimeout} (with the run as it stood) when {@code timeout} passes first.
   */
  public JsonNode waitForRun(String runId, Duration timeout) {
    String path = runPath(runId);
    nonNegative("timeout", timeout);
    // Capped at ~146 years: Duration.toNanos() overflows past 292, and so would the deadline.
    long deadline = System.nanoTime() + (timeout.getSeconds() > Long.MAX_VALUE / 2_000_000_000L
        ? Long.MAX_VALUE / 2 : timeout.toNanos());
    while (true) {
      Duration left = Duration.ofNanos(Math.max(0, deadline - System.nanoTime()));
      Duration wait = left.compareTo(LONG_POLL_MAX) > 0 ? LONG_POLL_MAX : left;
      JsonNode run = Http.expect(http.send(new Request("GET", path, Map.of("wait", Http.seconds(wait)), null, null,
          wait)), "status");
      if (TERMINAL.contains(run.path("status").asText())) {
        return run;
      }
      if (System.nanoTime() - deadline >= 0) {
        throw new WaitTimeout("run " + runId + " is still " + run.path("status").asText() + " after "
            + Http.seconds(timeout) + " s", run);
      }
    }
  }

  /** The 50 newest runs. */
  public List<JsonNode> listRuns() {
    return listRuns(null, null, 50);
  }

  /**
   * {@code GET /workflow/runs}: up to {@code limit} runs, newest first, following {@code next_cursor};
   * {@code workflowId} and {@code status} (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED) filter when not null.
   */
  public List<JsonNode> listRuns(String workflowId, String status, int limit) {
    return pages("/workflow/runs", limit, filters("workflow_id", workflowId, "status", status));
  }

  /** {@code POST /workflow/run/{id}/cancel}: stops a running run ({@link Conflict} when it is not running). */
  public JsonNode cancel(String runId) {
    return http.send(Request.of("POST", runPath(runId) + "/cancel")).body();
  }

  /** {@code POST /workflow/run/{id}/retry}: re-opens a FAILED run's dead-lettered steps. */
  public JsonNode retry(String runId) {
    return http.send(Request.of("POST", runPath(runId) + "/retry")).body();
  }

  /** The 50 newest OPEN dead letters. */
  public List<JsonNode> listDeadLetters() {
    return listDeadLetters("OPEN", null, 50);
  }

  /**
   * {@code GET /dlq}: up to {@code limit} dead letters, newest first; {@code status} is OPEN, REDRIVEN or
   * DISCARDED (null: OPEN), {@code workflowId} filters when not null.
   */
  public List<JsonNode> listDeadLetters(String status, String workflowId, int limit) {
    return pages("/dlq", limit, filters("status", status == null ? "OPEN" : status, "workflow_id", workflowId));
  }

  /** {@code POST /dlq/{id}/redrive} with no body: a fresh attempt budget, the step keeps its input. */
  public JsonNode redrive(long deadLetterId) {
    return http.send(Request.of("POST", "/dlq/" + deadLetterId + "/redrive")).body();
  }

  /** {@code POST /dlq/{id}/redrive} with {@code {"input": input}}: null is a valid new input (JSON null). */
  public JsonNode redrive(long deadLetterId, Object input) {
    String path = "/dlq/" + deadLetterId + "/redrive";
    return http.send(json(path, Collections.singletonMap("input", input), "input")).body();
  }

  /** {@code DELETE /dlq/{id}}: closes the dead letter without running the step again. */
  public void discard(long deadLetterId) {
    http.send(Request.of("DELETE", "/dlq/" + deadLetterId));
  }

  /** Releases the connections (at once on Java 21+, when collected on 17); later calls throw. */
  @Override
  public void close() {
    http.close();
  }

  private List<JsonNode> pages(String path, int limit, Map<String, String> filters) {
    if (limit < 1) {
      throw new IllegalArgumentException("limit must be a positive integer");
    }
    List<JsonNode> items = new ArrayList<>();
    String cursor = null;
    do {
      Map<String, String> query = new LinkedHashMap<>(filters);
      query.put("limit", Integer.toString(Math.min(PAGE_SIZE, limit - items.size())));
      if (cursor != null) {
        query.put("cursor", cursor);
      }
      JsonNode page = Http.expect(http.send(new Request("GET", path, query, null, null, Duration.ZERO)), "items");
      page.path("items").forEach(items::add);
      cursor = page.path("next_cursor").isTextual() ? page.path("next_cursor").asText() : null;
    } while (items.size() < limit && cursor != null && !cursor.isEmpty());
    return List.copyOf(items.size() > limit ? items.subList(0, limit) : items);
  }

  private static Map<String, String> filters(String k1, String v1, String k2, String v2) {
    Map<String, String> filters = new LinkedHashMap<>();
    if (v1 != null) {
      filters.put(k1, v1);
    }
    if (v2 != null) {
      filters.put(k2, v2);
    }
    return filters;
  }

  private static Request json(String path, Object body, String what) {
    return new Request("POST", path, Map.of(), Http.json(body, what), null, Duration.ZERO);
  }

  private static String runPath(String runId) {
    return "/workflow/run/" + Http.segment("runId", runId);
  }

  private static Duration nonNegative(String name, Duration value) {
    if (value == null || value.isNegative()) {
      throw new IllegalArgumentException(name + " must be a non-negative duration");
    }
    return value;
  }
}
