package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.data.EventData;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.MDC;

/** R2.8: the handle span of each job, its place in the job's trace, and its context on the result. */
class WorkerTracingTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final String TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
  private static final String DISPATCH_SPAN_ID = "00f067aa0ba902b7";
  private static final String TRACEPARENT = "00-" + TRACE_ID + "-" + DISPATCH_SPAN_ID + "-01";

  private TestKafka kafka;
  private InMemorySpanExporter spans;
  private OpenTelemetrySdk otel;

  @BeforeEach
  void setUp() {
    kafka = new TestKafka();
    spans = InMemorySpanExporter.create();
    otel = OpenTelemetrySdk.builder()
        .setTracerProvider(SdkTracerProvider.builder().addSpanProcessor(SimpleSpanProcessor.create(spans)).build())
        .build(); // not registered globally: other tests keep the no-op default
  }

  @AfterEach
  void tearDown() throws Exception {
    otel.close();
    kafka.close();
  }

  @Test
  void shouldNestHandleSpanUnderDispatchSpanAndUserSpansUnderItWhenJobHasTraceparent() throws Exception {
    kafka.createJobTopics(1, "traced", "async");
    Map<String, String> seen = new ConcurrentHashMap<>();
    AtomicReference<CompletableFuture<Object>> pending = new AtomicReference<>();
    TestKafka.Reader results = kafka.reader("results");
    try (Worker worker = kafka.worker().openTelemetry(otel).build()) {
      worker.register("traced", payload -> {
        seen.put("mdc_trace_id", String.valueOf(MDC.get("trace_id")));
        seen.put("mdc_span_id", String.valueOf(MDC.get("span_id")));
        seen.put("current_span_id", Span.current().getSpanContext().getSpanId());
        otel.getTracer("user-code").spanBuilder("user.work").startSpan().end(); // parent: the current span
        return "ok";
      });
      worker.register("async", payload -> {
        CompletableFuture<Object> later = new CompletableFuture<>();
        pending.set(later);
        return later;
      });
      worker.startAsync();
      kafka.send("traced", "run-t", TestKafka.job("traced", "job-t", "run-t", "1"),
          "traceparent", TRACEPARENT, "tracestate", "vendor=x");
      kafka.send("async", "run-a", TestKafka.job("async", "job-a", "run-a", "1"), "traceparent", TRACEPARENT);

      // The stage completes on this thread: the SDK's MDC ids for its own log lines must not stay here.
      // Once the worker waits on the stage, completing it runs the worker's follow-up on this thread.
      await().atMost(WAIT).until(() -> pending.get() != null && pending.get().getNumberOfDependents() > 0);
      MDC.put("trace_id", "caller's");
      pending.get().complete("done");
      assertThat(MDC.get("trace_id")).isEqualTo("caller's");
      assertThat(MDC.get("span_id")).isNull();
      MDC.remove("trace_id");

      Map<String, ConsumerRecord<byte[], byte[]>> byJob = byJobId(results.await(2, WAIT));
      SpanData handle = awaitSpan("baton.handle traced");
      assertThat(handle.getKind()).isEqualTo(SpanKind.CONSUMER);
      assertThat(handle.getTraceId()).isEqualTo(TRACE_ID);
      assertThat(handle.getParentSpanId()).isEqualTo(DISPATCH_SPAN_ID);
      assertThat(handle.getParentSpanContext().isRemote()).isTrue();
      assertThat(handle.getStatus().getStatusCode()).isEqualTo(StatusCode.UNSET);
      assertThat(handle.getInstrumentationScopeInfo().getName()).isEqualTo("baton");
      assertThat(handle.getInstrumentationScopeInfo().getVersion()).isEqualTo(Version.SDK_VERSION);
      assertThat(attributes(handle)).containsAllEntriesOf(Map.ofEntries(
          Map.entry("baton.run_id", "run-t"), Map.entry("baton.workflow_id", "wf"), Map.entry("baton.step", "s-traced"),
          Map.entry("baton.attempt", 1L), Map.entry("baton.action", "traced"), Map.entry("baton.job_id", "job-t"),
          Map.entry("messaging.system", "kafka"), Map.entry("messaging.destination.name", kafka.prefix + "jobs.traced"),
          Map.entry("baton.worker_id", worker.id()), Map.entry("baton.sdk.language", "java"),
          Map.entry("baton.sdk.version", Version.SDK_VERSION)));

      SpanData user = awaitSpan("user.work");
      assertThat(user.getTraceId()).isEqualTo(TRACE_ID);
      assertThat(user.getParentSpanId()).isEqualTo(handle.getSpanId());
      assertThat(seen).containsEntry("mdc_trace_id", TRACE_ID).containsEntry("mdc_span_id", handle.getSpanId())
          .containsEntry("current_span_id", handle.getSpanId());

      ConsumerRecord<byte[], byte[]> result = byJob.get("job-t");
      assertThat(TestKafka.header(result, "traceparent")).isEqualTo("00-" + TRACE_ID + "-" + handle.getSpanId() + "-01");
      assertThat(TestKafka.header(result, "tracestate")).isEqualTo("vendor=x");

      SpanData async = awaitSpan("baton.handle async");
      assertThat(async.getParentSpanId()).isEqualTo(DISPATCH_SPAN_ID);
      assertThat(TestKafka.header(byJob.get("job-a"), "traceparent")).contains(async.getSpanId());
      assertThat(TestKafka.header(byJob.get("job-a"), "tracestate")).isNull();
    }
  }

  @Test
  void shouldRecordErrorOnHandleSpanWhenHandlerFailsAndNoErrorWhenItRetriesLater() throws Exception {
    kafka.createJobTopics(1, "fails", "later");
    kafka.send("fails", "run-f", TestKafka.job("fails", "job-f", "run-f", "1"), "traceparent", TRACEPARENT);
    kafka.send("later", "run-l", TestKafka.job("later", "job-l", "run-l", "1"), "traceparent", TRACEPARENT);
    Worker worker = kafka.worker().openTelemetry(otel).build();
    worker.register("fails", payload -> {
      throw new IllegalStateException("boom");
    });
    worker.register("later", payload -> {
      throw new RetryLater(Duration.ofSeconds(3));
    });
    assertThat(worker.runUntilIdle(WAIT)).isEqualTo(new RunReport(0, 2, 0));
    List<JsonNode> results = kafka.reader("results").awaitJson(2, WAIT);

    SpanData failed = awaitSpan("baton.handle fails");
    assertThat(failed.getStatus().getStatusCode()).isEqualTo(StatusCode.ERROR);
    assertThat(failed.getStatus().getDescription()).isEqualTo("boom");
    String errorType = results.stream().filter(r -> r.get("job_id").asText().equals("job-f")).findFirst()
        .orElseThrow().at("/error/type").asText();
    assertThat(errorType).isEqualTo("IllegalStateException");
    assertThat(attributes(failed)).containsEntry("baton.error_type", errorType);
    EventData exception = failed.getEvents().stream().filter(e -> e.getName().equals("exception")).findFirst()
        .orElseThrow();
    assertThat(exception.getAttributes().get(AttributeKey.stringKey("exception.type")))
        .isEqualTo("java.lang.IllegalStateException");
    assertThat(exception.getAttributes().get(AttributeKey.stringKey("exception.message"))).isEqualTo("boom");

    SpanData later = awaitSpan("baton.handle later");
    assertThat(later.getStatus().getStatusCode()).isEqualTo(StatusCode.UNSET);
    assertThat(attributes(later)).containsEntry("baton.outcome", "retry_later").doesNotContainKey("baton.error_type");
    assertThat(later.getEvents()).isEmpty();
  }

  @Test
  void shouldRunJobUnderNewRootSpanWhenTraceparentIsMalformed() throws Exception {
    Map<String, byte[]> bad = new LinkedHashMap<>();
    bad.put("garbage", bytes("not a traceparent"));
    bad.put("nul", bytes(TRACEPARENT.substring(0, 54) + "\u0000"));
    bad.put("short", bytes(TRACEPARENT.substring(0, 52)));
    bad.put("long", bytes(TRACEPARENT + "-00"));
    bad.put("empty", new byte[0]);
    bad.put("zeros", bytes("00-00000000000000000000000000000000-" + DISPATCH_SPAN_ID + "-01"));
    bad.put("version", bytes("ff-" + TRACE_ID + "-" + DISPATCH_SPAN_ID + "-01"));
    bad.put("huge", bytes("0".repeat(100_000)));
    byte[] notUtf8 = bytes(TRACEPARENT);
    notUtf8[10] = (byte) 0xff;
    bad.put("notutf8", notUtf8);
    kafka.createJobTopics(1, "bad");
    for (Map.Entry<String, byte[]> header : bad.entrySet()) {
      String jobId = "job-" + header.getKey();
      kafka.sendWithHeaders("bad", "run-" + jobId, TestKafka.job("bad", jobId, "run-" + jobId, "1"),
          List.of(Map.entry("traceparent", header.getValue())));
    }
    // A tracestate that is not one: the parent stays, the state is dropped.
    kafka.sendWithHeaders("bad", "run-state", TestKafka.job("bad", "job-state", "run-state", "1"),
        List.of(Map.entry("traceparent", bytes(TRACEPARENT)), Map.entry("tracestate", bytes("\u0000=\u00ff"))));
    Worker worker = kafka.worker().openTelemetry(otel).build();
    worker.register("bad", payload -> "ran");
    assertThat(worker.runUntilIdle(WAIT)).isEqualTo(new RunReport(bad.size() + 1, 0, 0));

    Map<String, ConsumerRecord<byte[], byte[]>> byJob = byJobId(kafka.reader("results").await(bad.size() + 1, WAIT));
    await().atMost(WAIT).until(() -> spans.getFinishedSpanItems().size() == bad.size() + 1);
    Map<String, SpanData> byJobSpan = spans.getFinishedSpanItems().stream()
        .collect(Collectors.toMap(s -> (String) attributes(s).get("baton.job_id"), Function.identity()));
    for (String name : bad.keySet()) {
      SpanData span = byJobSpan.get("job-" + name);
      assertThat(span.getParentSpanContext().isValid()).as(name).isFalse();
      assertThat(TestKafka.header(byJob.get("job-" + name), "traceparent")).as(name)
          .isEqualTo("00-" + span.getTraceId() + "-" + span.getSpanId() + "-" + span.getSpanContext().getTraceFlags().asHex());
    }
    SpanData state = byJobSpan.get("job-state");
    assertThat(state.getParentSpanId()).isEqualTo(DISPATCH_SPAN_ID);
    assertThat(TestKafka.header(byJob.get("job-state"), "tracestate")).isNull();
  }

  @Test
  void shouldForwardJobTraceContextToHandlerAndResultWhenOpenTelemetryIsNoop() throws Exception {
    kafka.createJobTopics(1, "plain");
    kafka.send("plain", "run-p1", TestKafka.job("plain", "job-p1", "run-p1", "1"), "traceparent", TRACEPARENT);
    kafka.sendJob("plain", "job-p2", "2");
    Map<String, List<String>> seen = new ConcurrentHashMap<>();
    Worker worker = kafka.worker().openTelemetry(OpenTelemetry.noop()).concurrency(1).build();
    worker.register("plain", (payload, ctx) -> {
      List<String> ids = new ArrayList<>();
      ids.add(String.valueOf(MDC.get("trace_id")));
      ids.add(String.valueOf(MDC.get("span_id")));
      ids.add(Span.current().getSpanContext().getSpanId());
      seen.put(ctx.jobId(), ids);
      return "ok";
    });
    assertThat(worker.runUntilIdle(WAIT)).isEqualTo(new RunReport(2, 0, 0));
    Map<String, ConsumerRecord<byte[], byte[]>> byJob = byJobId(kafka.reader("results").await(2, WAIT));

    // The no-op API still makes the dispatch span current, so a user's own tracer joins the trace.
    assertThat(seen.get("job-p1")).containsExactly(TRACE_ID, DISPATCH_SPAN_ID, DISPATCH_SPAN_ID);
    assertThat(TestKafka.header(byJob.get("job-p1"), "traceparent")).isEqualTo(TRACEPARENT);
    assertThat(seen.get("job-p2")).containsExactly("null", "null", SpanContext.getInvalid().getSpanId());
    assertThat(TestKafka.header(byJob.get("job-p2"), "traceparent")).isNull();
  }

  private SpanData awaitSpan(String name) {
    return await().atMost(WAIT).until(() -> spans.getFinishedSpanItems().stream()
        .filter(s -> s.getName().equals(name)).findFirst(), java.util.Optional::isPresent).orElseThrow();
  }

  private static Map<String, Object> attributes(SpanData span) {
    Map<String, Object> out = new LinkedHashMap<>();
    span.getAttributes().forEach((key, value) -> out.put(key.getKey(), value));
    return out;
  }

  private static Map<String, ConsumerRecord<byte[], byte[]>> byJobId(List<ConsumerRecord<byte[], byte[]>> records) {
    return records.stream().collect(Collectors.toMap(r -> TestKafka.header(r, "baton-job-id"), Function.identity(),
        (a, b) -> a));
  }

  private static byte[] bytes(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }
}
