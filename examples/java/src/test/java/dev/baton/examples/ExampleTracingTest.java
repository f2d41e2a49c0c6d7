package dev.baton.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import dev.baton.worker.Version;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The example's trace file: one OTLP/JSON ExportTraceServiceRequest per line, as the tracing contract says. */
class ExampleTracingTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
  private static final String PARENT_ID = "00f067aa0ba902b7";

  @TempDir
  Path tmp;

  @Test
  void shouldWriteOtlpJsonLinesWhenTraceDirIsSet() throws Exception {
    Path dir = tmp.resolve("not/yet/there");
    OpenTelemetrySdk otel = ExampleTracing.fromEnv(Map.of("BATON_TRACE_DIR", dir.toString())::get, 4242);
    Tracer tracer = otel.getTracer("baton", Version.SDK_VERSION);
    Context parent = Context.root().with(Span.wrap(SpanContext.createFromRemoteParent(TRACE_ID, PARENT_ID,
        TraceFlags.getSampled(), TraceState.getDefault())));
    Span handle = tracer.spanBuilder("baton.handle java.score").setParent(parent).setSpanKind(SpanKind.CONSUMER)
        .setAttribute("baton.step", "score").setAttribute("baton.attempt", 1L).startSpan();
    handle.recordException(new IllegalStateException("boom"));
    handle.setStatus(StatusCode.ERROR, "boom");
    handle.end();
    tracer.spanBuilder("root").setNoParent().startSpan().end();
    otel.close(); // flushes the batch processor

    Path file = dir.resolve("baton-worker-java-4242.jsonl");
    List<String> lines = Files.readAllLines(file);
    assertThat(lines).isNotEmpty().allSatisfy(line -> assertThat(line).startsWith("{\"resourceSpans\":["));
    List<JsonNode> spans = new ArrayList<>();
    for (String line : lines) {
      JsonNode request = JSON.readTree(line);
      for (JsonNode resourceSpans : request.get("resourceSpans")) {
        assertThat(attributes(resourceSpans.at("/resource"))).containsEntry("service.name", "baton-worker-java");
        for (JsonNode scopeSpans : resourceSpans.get("scopeSpans")) {
          assertThat(scopeSpans.at("/scope/name").asText()).isEqualTo("baton");
          assertThat(scopeSpans.at("/scope/version").asText()).isEqualTo(Version.SDK_VERSION);
          scopeSpans.get("spans").forEach(spans::add);
        }
      }
    }
    assertThat(spans).hasSize(2);
    JsonNode span = spans.stream().filter(s -> s.get("name").asText().equals("baton.handle java.score"))
        .findFirst().orElseThrow();
    assertThat(span.get("traceId").asText()).isEqualTo(TRACE_ID);
    assertThat(span.get("spanId").asText()).matches("[0-9a-f]{16}");
    assertThat(span.get("parentSpanId").asText()).isEqualTo(PARENT_ID);
    assertThat(span.get("kind").asInt()).isEqualTo(5);
    assertThat(span.get("startTimeUnixNano").isTextual()).isTrue();
    assertThat(span.get("startTimeUnixNano").asText()).matches("\\d{19}");
    assertThat(Long.parseLong(span.get("endTimeUnixNano").asText()))
        .isGreaterThanOrEqualTo(Long.parseLong(span.get("startTimeUnixNano").asText()));
    assertThat(span.get("attributes").toString()).contains(
        "{\"key\":\"baton.step\",\"value\":{\"stringValue\":\"score\"}}",
        "{\"key\":\"baton.attempt\",\"value\":{\"intValue\":\"1\"}}");
    assertThat(span.at("/status/code").asInt()).isEqualTo(2);
    assertThat(span.at("/status/message").asText()).isEqualTo("boom");
    assertThat(span.at("/events/0/name").asText()).isEqualTo("exception");
    assertThat(attributes(span.at("/events/0"))).containsEntry("exception.message", "boom");

    JsonNode root = spans.stream().filter(s -> s.get("name").asText().equals("root")).findFirst().orElseThrow();
    assertThat(root.has("parentSpanId")).as("a root span has no parentSpanId").isFalse();
    assertThat(root.get("traceId").asText()).matches("[0-9a-f]{32}");
    assertThat(root.get("kind").asInt()).isEqualTo(1);
  }

  @Test
  void shouldConfigureNothingWhenNeitherVariableIsSet() {
    assertThat(ExampleTracing.fromEnv(Map.of("BATON_TRACE_DIR", " ")::get, 1)).isNull();
    assertThat(ExampleTracing.fromEnv(k -> null, 1)).isNull();
  }

  @Test
  void shouldNameTheVariableWhenEndpointIsNotAnHttpUrl() {
    for (String bad : List.of("localhost:4318", "ftp://collector", "http://", "not a url")) {
      Map<String, String> env = new HashMap<>(Map.of("OTEL_EXPORTER_OTLP_ENDPOINT", bad));
      assertThatThrownBy(() -> ExampleTracing.fromEnv(env::get, 1)).as(bad)
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL, got '" + bad + "'");
    }
    OpenTelemetrySdk ok = ExampleTracing.fromEnv(Map.of("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")::get, 1);
    assertThat(ok).isNotNull();
    ok.close();
  }

  @Test
  void shouldPostSpansToTracesPathWhenOtlpEndpointIsSet() throws Exception {
    List<String> posts = new CopyOnWriteArrayList<>();
    HttpServer collector = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    collector.createContext("/", exchange -> {
      byte[] body = exchange.getRequestBody().readAllBytes();
      posts.add(exchange.getRequestMethod() + " " + exchange.getRequestURI().getPath() + " "
          + exchange.getRequestHeaders().getFirst("Content-Type") + " " + body.length);
      exchange.sendResponseHeaders(200, -1);
      exchange.close();
    });
    collector.start();
    try {
      String endpoint = "http://127.0.0.1:" + collector.getAddress().getPort() + "/";
      OpenTelemetrySdk otel = ExampleTracing.fromEnv(Map.of("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)::get, 1);
      otel.getTracer("baton").spanBuilder("baton.handle step1").startSpan().end();
      otel.close(); // flushes the batch processor: the POST is done when close returns
      assertThat(posts).hasSize(1);
      assertThat(posts.get(0)).startsWith("POST /v1/traces application/x-protobuf ");
    } finally {
      collector.stop(0);
    }
  }

  private static Map<String, String> attributes(JsonNode owner) {
    Map<String, String> out = new HashMap<>();
    for (JsonNode attribute : owner.get("attributes")) {
      out.put(attribute.get("key").asText(), attribute.at("/value/stringValue").asText());
    }
    return out;
  }
}
