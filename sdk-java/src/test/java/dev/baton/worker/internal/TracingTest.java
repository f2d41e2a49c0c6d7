package dev.baton.worker.internal;

import static org.assertj.core.api.Assertions.assertThat;

import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.slf4j.MDC;

/** The handle span's pure logic, without Kafka: failures that break the SDK, timeouts, the no-op path. */
class TracingTest {
  private static final String TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

  private final InMemorySpanExporter spans = InMemorySpanExporter.create();
  private final OpenTelemetrySdk otel = OpenTelemetrySdk.builder()
      .setTracerProvider(SdkTracerProvider.builder().addSpanProcessor(SimpleSpanProcessor.create(spans)).build())
      .build();

  @AfterEach
  void tearDown() {
    otel.close();
  }

  @Test
  void shouldStillRecordExceptionEventWhenThrowableBreaksOnRead() throws Exception {
    RuntimeException broken = new RuntimeException() {
      @Override
      public String getMessage() {
        throw new IllegalStateException("no message for you");
      }
    };
    Failure failure = Failure.of(broken);
    Tracing.Handle handle = new Tracing(otel, "w-1").start(record(null), job());
    handle.failed(broken, failure);
    handle.end();

    SpanData span = spans.getFinishedSpanItems().get(0);
    assertThat(span.getStatus().getStatusCode()).isEqualTo(StatusCode.ERROR);
    assertThat(span.getStatus().getDescription()).contains("getMessage() threw");
    assertThat(span.getEvents()).hasSize(1);
    assertThat(span.getEvents().get(0).getName()).isEqualTo("exception");
    assertThat(span.getEvents().get(0).getAttributes().get(AttributeKey.stringKey("exception.message")))
        .isEqualTo(failure.message());
  }

  @Test
  void shouldMarkErrorWithTimeoutTypeWhenWorkerAnswersTimeout() {
    Tracing.Handle handle = new Tracing(otel, "w-1").start(record(TRACEPARENT), job());
    handle.failed(null, Failure.timeout(12, 10, null));
    handle.end();

    SpanData span = spans.getFinishedSpanItems().get(0);
    assertThat(span.getStatus().getStatusCode()).isEqualTo(StatusCode.ERROR);
    assertThat(span.getAttributes().get(AttributeKey.stringKey("baton.error_type"))).isEqualTo("Timeout");
    assertThat(span.getEvents()).isEmpty();
  }

  @Test
  void shouldForwardParentAndLeaveMdcAloneWhenApiIsNoop() {
    Tracing tracing = new Tracing(OpenTelemetry.noop(), "w-1");
    Tracing.Handle traced = tracing.start(record(TRACEPARENT), job());
    ProducerRecord<byte[], byte[]> out = new ProducerRecord<>("results", new byte[0]);
    traced.inject(out.headers());
    assertThat(new String(out.headers().lastHeader("traceparent").value(), StandardCharsets.UTF_8))
        .isEqualTo(TRACEPARENT);

    Tracing.Handle untraced = tracing.start(record(null), job());
    ProducerRecord<byte[], byte[]> none = new ProducerRecord<>("results", new byte[0]);
    untraced.inject(none.headers());
    assertThat(none.headers().toArray()).isEmpty();
    MDC.put("trace_id", "mine");
    try (Tracing.MdcScope scope = untraced.mdc()) {
      assertThat(MDC.get("trace_id")).isEqualTo("mine");
    } finally {
      MDC.remove("trace_id");
    }
  }

  private static ConsumerRecord<byte[], byte[]> record(String traceparent) {
    RecordHeaders headers = new RecordHeaders();
    if (traceparent != null) {
      headers.add("traceparent", traceparent.getBytes(StandardCharsets.UTF_8));
    }
    return new ConsumerRecord<>("workflow-jobs.a", 0, 0L, 0L, org.apache.kafka.common.record.TimestampType.CREATE_TIME,
        0, 0, new byte[0], new byte[0], headers, java.util.Optional.empty());
  }

  private static Job job() {
    return new Job("job-1", "run-1", "wf", 1, "s", "a", 1, 3, null, Instant.now().plusSeconds(60), null, Instant.now());
  }
}
