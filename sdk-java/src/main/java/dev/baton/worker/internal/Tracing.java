package dev.baton.worker.internal;

import dev.baton.worker.Version;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.common.AttributesBuilder;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
import io.opentelemetry.context.propagation.TextMapGetter;
import io.opentelemetry.context.propagation.TextMapPropagator;
import io.opentelemetry.context.propagation.TextMapSetter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/**
 * OpenTelemetry around each handler call (the R2.8 tracing contract): a {@code baton.handle <action>}
 * CONSUMER span whose parent is the job's {@code traceparent}, current while the handler runs so a
 * user's own spans nest under it, and whose context goes out on the result. The W3C propagator is used
 * directly, not the global one, which may be a no-op and would then cut the trace at every worker.
 */
final class Tracing {
  private static final Logger LOG = LoggerFactory.getLogger(Tracing.class);
  static final String TRACEPARENT = "traceparent";
  static final String TRACESTATE = "tracestate";
  private static final TextMapPropagator W3C = W3CTraceContextPropagator.getInstance();
  // A version-00 traceparent is 55 characters, and the W3C asks to pass on at least 512 characters of
  // tracestate: a header far past both is garbage, not worth decoding.
  private static final int MAX_HEADER_BYTES = 8192;
  private static final AttributeKey<String> ERROR_TYPE = AttributeKey.stringKey("baton.error_type");
  private static final AttributeKey<String> OUTCOME = AttributeKey.stringKey("baton.outcome");

  private final Tracer tracer;
  private final String workerId;

  Tracing(OpenTelemetry otel, String workerId) {
    this.tracer = otel.getTracer("baton", Version.SDK_VERSION);
    this.workerId = workerId;
  }

  /**
   * Starts the handle span of a decoded job. A malformed {@code traceparent} (any bytes) yields no parent:
   * the span is a new root and the job runs as usual.
   */
  Handle start(ConsumerRecord<byte[], byte[]> record, Job job) {
    try {
      return open(record, job);
    } catch (RuntimeException e) { // an application's broken tracer must not cost the job its result
      LOG.warn("job {}: no handle span, the tracer failed: {}", job.jobId(), e.toString());
      return new Handle(Span.getInvalid());
    }
  }

  private Handle open(ConsumerRecord<byte[], byte[]> record, Job job) {
    Context parent = W3C.extract(Context.root(), record.headers(), KafkaHeaders.INSTANCE);
    Span span = tracer.spanBuilder("baton.handle " + job.action())
        .setParent(parent)
        .setSpanKind(SpanKind.CONSUMER)
        .startSpan();
    if (span.isRecording()) { // with the no-op API nothing below would be kept: skip building it
      span.setAllAttributes(Attributes.builder()
          .put("baton.run_id", job.runId())
          .put("baton.workflow_id", job.workflowId())
          .put("baton.step", job.step())
          .put("baton.attempt", job.attempt())
          .put("baton.action", job.action())
          .put("baton.job_id", job.jobId())
          .put("messaging.system", "kafka")
          .put("messaging.destination.name", record.topic())
          .put("baton.worker_id", workerId)
          .put("baton.sdk.language", WorkerIdentity.LANGUAGE)
          .put("baton.sdk.version", Version.SDK_VERSION)
          .build());
    }
    return new Handle(span);
  }

  /** Restores what the MDC held before; closing twice is harmless. */
  interface MdcScope extends AutoCloseable {
    @Override
    void close();
  }

  /** The handle span of one job; ended once, by whoever sends the job's one result. */
  static final class Handle {
    private final Span span;

    Handle(Span span) {
      this.span = span;
    }

    SpanContext context() {
      return span.getSpanContext();
    }

    /** Makes the span current on this thread, and its ids the MDC's, until the returned scope closes. */
    MdcScope enter() {
      Scope scope = span.makeCurrent();
      MdcScope mdc = mdc();
      return () -> {
        mdc.close();
        scope.close();
      };
    }

    /**
     * Puts {@code trace_id} and {@code span_id} into the MDC for the SDK's own log lines about this job,
     * restoring the previous values on close (a CompletionStage may complete on the user's own thread,
     * whose MDC is not ours to clear).
     */
    MdcScope mdc() {
      SpanContext context = span.getSpanContext();
      if (!context.isValid()) {
        return () -> { };
      }
      String traceId = MDC.get("trace_id");
      String spanId = MDC.get("span_id");
      MDC.put("trace_id", context.getTraceId());
      MDC.put("span_id", context.getSpanId());
      return () -> {
        restore("trace_id", traceId);
        restore("span_id", spanId);
      };
    }

    /**
     * Records a FAILED result: status ERROR with the message and {@code baton.error_type} (the result's
     * {@code error.type}), plus the exception event when there is a throwable; a {@code RetryLater} is no
     * error but {@code baton.outcome=retry_later}.
     *
     * @param thrown what the handler threw (unwrapped), or null (a Timeout answered by the worker)
     */
    void failed(Throwable thrown, Failure failure) {
      if (!span.isRecording()) {
        return;
      }
      if ("RetryLater".equals(failure.type())) {
        span.setAttribute(OUTCOME, "retry_later");
        return;
      }
      span.setStatus(StatusCode.ERROR, failure.message());
      span.setAttribute(ERROR_TYPE, failure.type());
      if (thrown != null) {
        recordException(thrown, failure);
      }
    }

    void end() {
      span.end();
    }

    /** Puts this span's context on an outgoing record (nothing when it has none: no trace to continue). */
    void inject(Headers headers) {
      Context context = Context.root().with(span);
      W3C.inject(context, headers, KafkaHeaders.INSTANCE);
    }

    /**
     * The SDK reads the throwable's message and stack trace, which user code may make throw; the job
     * must still get its result, so then the event is built from the failure already made safe.
     */
    private void recordException(Throwable thrown, Failure failure) {
      try {
        span.recordException(thrown);
      } catch (Throwable broken) {
        AttributesBuilder event = Attributes.builder()
            .put("exception.type", thrown.getClass().getName())
            .put("exception.message", failure.message());
        if (failure.stacktrace() != null) {
          event.put("exception.stacktrace", failure.stacktrace());
        }
        span.addEvent("exception", event.build());
      }
    }

    private static void restore(String key, String previous) {
      if (previous == null) {
        MDC.remove(key);
      } else {
        MDC.put(key, previous);
      }
    }
  }

  /** Kafka headers as a W3C carrier: the last header of a name wins, as the other SDKs read it. */
  private enum KafkaHeaders implements TextMapGetter<Headers>, TextMapSetter<Headers> {
    INSTANCE;

    @Override
    public Iterable<String> keys(Headers headers) {
      List<String> keys = new ArrayList<>();
      for (Header header : headers) {
        keys.add(header.key());
      }
      return keys;
    }

    @Override
    public String get(Headers headers, String key) {
      if (headers == null) {
        return null;
      }
      Header header = headers.lastHeader(key);
      byte[] value = header == null ? null : header.value();
      if (value == null || value.length > MAX_HEADER_BYTES) {
        return null;
      }
      // Bytes that are not UTF-8 decode to U+FFFD, which no valid traceparent contains: ignored.
      return new String(value, StandardCharsets.UTF_8);
    }

    @Override
    public void set(Headers headers, String key, String value) {
      if (headers == null) {
        return;
      }
      headers.remove(key);
      headers.add(key, value.getBytes(StandardCharsets.UTF_8));
    }
  }
}
