package dev.baton.examples;

import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.exporter.otlp.http.trace.OtlpHttpSpanExporter;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.SdkTracerProviderBuilder;
import io.opentelemetry.sdk.trace.export.BatchSpanProcessor;
import io.opentelemetry.sdk.trace.export.SpanExporter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.Function;

/**
 * The example worker's OpenTelemetry SDK (the Baton SDK itself uses the API only). Configured from the
 * environment, as the other example workers and the orchestrator are:
 * <ul>
 *   <li>{@code BATON_TRACE_DIR}: OTLP/JSON lines in {@code $BATON_TRACE_DIR/baton-worker-java-<pid>.jsonl};
 *   <li>{@code OTEL_EXPORTER_OTLP_ENDPOINT} (or {@code OTEL_EXPORTER_OTLP_TRACES_ENDPOINT}): OTLP/HTTP.
 * </ul>
 * With neither, nothing is configured and the API stays a no-op.
 */
final class ExampleTracing {
  static final String SERVICE_NAME = "baton-worker-java";
  // Short, so `make demo` shows a run's spans soon after it finishes; shutdown flushes the rest.
  private static final Duration EXPORT_DELAY = Duration.ofMillis(500);

  private ExampleTracing() {}

  /**
   * The SDK the environment asks for, or null when it asks for none.
   *
   * @throws IllegalArgumentException naming the variable whose value is unusable
   */
  static OpenTelemetrySdk fromEnv(Function<String, String> env, long pid) {
    String dir = nonBlank(env.apply("BATON_TRACE_DIR"));
    String traces = nonBlank(env.apply("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
    String base = nonBlank(env.apply("OTEL_EXPORTER_OTLP_ENDPOINT"));
    if (dir == null && base == null && traces == null) {
      return null;
    }
    SdkTracerProviderBuilder provider = SdkTracerProvider.builder()
        .setResource(Resource.getDefault().toBuilder().put(AttributeKey.stringKey("service.name"), SERVICE_NAME).build());
    if (traces != null || base != null) {
      String endpoint = traces != null ? url(traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
          : url(base, "OTEL_EXPORTER_OTLP_ENDPOINT").replaceAll("/+$", "") + "/v1/traces";
      provider.addSpanProcessor(batch(OtlpHttpSpanExporter.builder().setEndpoint(endpoint).build()));
    }
    if (dir != null) {
      Path file = Path.of(dir, SERVICE_NAME + "-" + pid + ".jsonl");
      try {
        provider.addSpanProcessor(batch(new OtlpJsonFileExporter(file)));
      } catch (IOException e) {
        throw new UncheckedIOException("BATON_TRACE_DIR: cannot write " + file + ": " + e.getMessage(), e);
      }
    }
    return OpenTelemetrySdk.builder().setTracerProvider(provider.build()).build();
  }

  private static BatchSpanProcessor batch(SpanExporter exporter) {
    return BatchSpanProcessor.builder(exporter).setScheduleDelay(EXPORT_DELAY).build();
  }

  private static String url(String value, String name) {
    try {
      URI uri = new URI(value);
      if (("http".equals(uri.getScheme()) || "https".equals(uri.getScheme())) && uri.getHost() != null) {
        return value;
      }
    } catch (URISyntaxException e) {
      // reported below with the variable's name
    }
    throw new IllegalArgumentException(name + " must be an http(s) URL, got '" + value + "'");
  }

  private static String nonBlank(String value) {
    return value == null || value.isBlank() ? null : value.trim();
  }
}
