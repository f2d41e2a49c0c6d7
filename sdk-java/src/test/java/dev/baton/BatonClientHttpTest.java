package dev.baton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.baton.StubApi.Answer;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The client's wire behaviour against a local stub server: the cases a real orchestrator cannot be made to answer. */
class BatonClientHttpTest {
  private static final String RUN = "{\"run_id\":\"r1\",\"status\":\"COMPLETED\"}";

  private StubApi stub;
  private BatonClient client;

  @BeforeEach
  void setUp() throws Exception {
    stub = new StubApi();
    client = BatonClient.builder().url(stub.url() + "/").apiKey("k-1").timeout(Duration.ofSeconds(5)).build();
  }

  @AfterEach
  void tearDown() {
    client.close();
    stub.close();
  }

  @ParameterizedTest
  @CsvSource({"400,BadRequest", "401,Unauthorized", "403,Forbidden", "404,NotFound", "409,Conflict",
      "413,RequestTooLarge", "422,ValidationFailed", "503,ServiceUnavailable", "500,ApiError", "405,ApiError"})
  void shouldThrowTheStatusClassWhenTheBodyIsTheErrorEnvelope(int status, String type) {
    stub.answer(Answer.json(status, "{\"error\":{\"code\":\"some_code\",\"message\":\"it failed\","
        + "\"details\":{\"loc\":[\"body\"]}}}"));
    ApiError error = catchThrowableOfType(ApiError.class, () -> client.getRun("r1"));
    assertThat(error.getClass().getSimpleName()).isEqualTo(type);
    assertThat(error.status()).isEqualTo(status);
    assertThat(error.errorCode()).isEqualTo("some_code");
    assertThat(error.message()).isEqualTo("it failed");
    assertThat(error.getMessage()).isEqualTo(status + " some_code: it failed");
    assertThat(error.details().toString()).isEqualTo("{\"loc\":[\"body\"]}");
    assertThat(error.code()).isEqualTo("BATON_API");
  }

  @Test
  void shouldUseTheHttpReasonWhenTheBodyIsHtmlOrNotAnEnvelope() {
    String page = "<html><body>Traceback (most recent call last)</body></html>";
    stub.answer(new Answer(502, "text/html", page, Duration.ZERO),
        Answer.json(500, "{\"detail\":\"Traceback: boom\"}"), Answer.json(599, ""));
    ApiError html = catchThrowableOfType(ApiError.class, () -> client.getRun("r1"));
    assertThat(html.getMessage()).isEqualTo("502: Bad Gateway");
    assertThat(html.errorCode()).isNull();
    assertThat(html.details()).isNull();
    assertThat(catchThrowableOfType(ApiError.class, () -> client.getRun("r1")).message())
        .isEqualTo("Internal Server Error");
    assertThat(catchThrowableOfType(ApiError.class, () -> client.getRun("r1")).message()).isEqualTo("HTTP 599");
  }

  @Test
  void shouldThrowApiErrorWhenASuccessIsNotTheBatonApi() {
    stub.answer(new Answer(200, "text/html", "<html>a login page</html>", Duration.ZERO), Answer.json(200, "{}"),
        Answer.json(200, "[]"));
    assertThat(catchThrowableOfType(ApiError.class, () -> client.getRun("r1")).message()).contains("not JSON");
    assertThat(catchThrowableOfType(ApiError.class, () -> client.waitForRun("r1", Duration.ofSeconds(1))).message())
        .contains("'status'");
    assertThat(catchThrowableOfType(ApiError.class, () -> client.listRuns()).message()).contains("'items'");
  }

  @Test
  void shouldSendTheTokenTheKeyTheJsonBodyAndTheWaitWhenTriggering() {
    stub.answer(Answer.json(201, RUN));
    client.trigger("order", Map.of("id", 42), "order-42", Duration.ofMillis(1500));
    StubApi.Received request = stub.received.get(0);
    assertThat(request.method()).isEqualTo("POST");
    assertThat(request.uri()).isEqualTo("/workflow/order/trigger?wait=1.5");
    assertThat(request.header("Authorization")).isEqualTo("Bearer k-1");
    assertThat(request.header("Idempotency-Key")).isEqualTo("order-42");
    assertThat(request.header("Content-Type")).isEqualTo("application/json");
    assertThat(request.header("User-Agent")).startsWith("baton-java/");
    assertThat(request.body()).isEqualTo("{\"input\":{\"id\":42}}");

    client.trigger("order", null);
    assertThat(stub.received.get(1).uri()).isEqualTo("/workflow/order/trigger");
    assertThat(stub.received.get(1).header("Idempotency-Key")).isNull();
    assertThat(stub.received.get(1).body()).isEqualTo("{\"input\":null}");
  }

  @Test
  void shouldSendNoBodyWhenRedrivenWithoutInputAndNullWhenGivenNull() {
    client.redrive(7);
    client.redrive(7, null);
    client.redrive(7, List.of(1, 2));
    stub.answer(Answer.json(204, ""));
    client.discard(7);
    assertThat(stub.received).extracting(StubApi.Received::body)
        .containsExactly("", "{\"input\":null}", "{\"input\":[1,2]}", "");
    assertThat(stub.received.get(0).header("Content-Type")).isNull();
    assertThat(stub.received.get(3).method()).isEqualTo("DELETE");
    assertThat(stub.received.get(3).uri()).isEqualTo("/dlq/7");
  }

  @Test
  void shouldFollowNextCursorWhenAListSpansPages() {
    stub.answer(Answer.json(200, "{\"items\":[{\"n\":1},{\"n\":2}],\"next_cursor\":\"c/1\"}"),
        Answer.json(200, "{\"items\":[{\"n\":3}],\"next_cursor\":null}"),
        Answer.json(200, "{\"items\":[{\"n\":1},{\"n\":2}],\"next_cursor\":\"c2\"}"));
    assertThat(client.listRuns("wf 1", "FAILED", 10)).extracting(n -> n.get("n").asInt()).containsExactly(1, 2, 3);
    assertThat(stub.received).extracting(StubApi.Received::uri).containsExactly(
        "/workflow/runs?workflow_id=wf+1&status=FAILED&limit=10",
        "/workflow/runs?workflow_id=wf+1&status=FAILED&limit=8&cursor=c%2F1");
    assertThat(client.listDeadLetters(null, null, 2)).hasSize(2); // the limit reached: no further page
    assertThat(stub.received.get(2).uri()).isEqualTo("/dlq?status=OPEN&limit=2");
    assertThatThrownBy(() -> client.listRuns(null, null, 0)).isInstanceOf(IllegalArgumentException.class)
        .hasMessage("limit must be a positive integer");
  }

  @Test
  void shouldEscapeIdsAsOnePathSegmentWhenTheyHoldSlashesOrDots() {
    client.cancel("a/b c");
    client.retry("..");
    assertThat(stub.received).extracting(StubApi.Received::uri)
        .containsExactly("/workflow/run/a%2Fb%20c/cancel", "/workflow/run/%2E%2E/retry");
    assertThatThrownBy(() -> client.getRun("")).isInstanceOf(IllegalArgumentException.class)
        .hasMessage("runId must be a non-empty string");
  }

  @Test
  void shouldReuseOneConnectionWhenTheClientMakesManyRequests() {
    for (int i = 0; i < 5; i++) {
      stub.answer(Answer.json(200, RUN));
      client.getRun("r1");
    }
    assertThat(stub.received.stream().map(StubApi.Received::remotePort).collect(Collectors.toSet())).hasSize(1);
  }

  @Test
  void shouldThrowApiConnectionErrorWhenNoAnswerComesWithinTheTimeout() {
    stub.answer(Answer.hang());
    try (BatonClient quick = BatonClient.builder().url(stub.url()).timeout(Duration.ofMillis(300)).build()) {
      long started = System.nanoTime();
      ApiConnectionError error = catchThrowableOfType(ApiConnectionError.class, () -> quick.getRun("r1"));
      assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(5));
      assertThat(error.code()).isEqualTo("BATON_API_CONNECTION");
      assertThat(error.status()).isZero();
      assertThat(error.getMessage()).contains("GET " + stub.url() + "/workflow/run/r1", "no answer within 0.3 s");
    }
  }

  @Test
  void shouldAllowTheWaitOnTopOfTheTimeoutWhenALongPollWaits() {
    // The first poll is answered after 600 ms, twice the client's timeout: within timeout + wait.
    stub.answer(Answer.json(200, "{\"status\":\"RUNNING\"}").after(Duration.ofMillis(600)), Answer.json(200, RUN));
    try (BatonClient quick = BatonClient.builder().url(stub.url()).timeout(Duration.ofMillis(300)).build()) {
      assertThat(quick.waitForRun("r1", Duration.ofSeconds(2)).get("status").asText()).isEqualTo("COMPLETED");
    }
    assertThat(stub.received.get(0).uri()).matches("/workflow/run/r1\\?wait=(2|1\\.9\\d*)"); // 2 s less the time taken
    assertThat(stub.received.get(1).uri()).matches("/workflow/run/r1\\?wait=[01](\\.\\d{1,3})?");

    stub.answer(Answer.json(200, RUN));
    client.waitForRun("r1", Duration.ofMinutes(10));
    assertThat(stub.received.get(2).uri()).isEqualTo("/workflow/run/r1?wait=60"); // one poll waits 60 s at most
    stub.answer(Answer.json(200, RUN));
    client.waitForRun("r1", Duration.ofSeconds(Long.MAX_VALUE)); // no overflow
    assertThat(stub.received.get(3).uri()).isEqualTo("/workflow/run/r1?wait=60");
  }

  @Test
  void shouldThrowApiConnectionErrorWhenTheUrlIsUnreachable() throws Exception {
    String closed = "http://127.0.0.1:" + Orchestrator.freePort();
    try (BatonClient nowhere = BatonClient.builder().url(closed).timeout(Duration.ofSeconds(2)).build()) {
      ApiConnectionError error = catchThrowableOfType(ApiConnectionError.class, nowhere::listRuns);
      assertThat(error).isInstanceOf(ApiError.class);
      assertThat(error.code()).isEqualTo("BATON_API_CONNECTION");
      assertThat(error.getMessage()).contains("cannot reach the Baton API", closed);
    }
  }

  @Test
  void shouldRefuseCallsWhenClosed() {
    client.close();
    assertThatThrownBy(() -> client.getRun("r1")).isInstanceOf(IllegalStateException.class)
        .hasMessage("the client is closed");
  }
}
