package dev.baton.examples;

import io.opentelemetry.exporter.internal.otlp.traces.TraceRequestMarshaler;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SpanExporter;
import java.io.ByteArrayOutputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Writes each export batch as one line of OTLP/JSON ({@code ExportTraceServiceRequest}), as the
 * OpenTelemetry Collector's file exporter does: ids in lowercase hex, 64-bit integers as decimal strings,
 * enums as numbers. The encoding is the OTLP exporters' own (opentelemetry-exporter-otlp-common), the one
 * {@code OtlpStdoutSpanExporter} uses; that exporter's artifact is not served by every Maven mirror, and
 * the same encoder keeps the files byte-compatible with what OTLP/HTTP JSON would carry.
 */
final class OtlpJsonFileExporter implements SpanExporter {
  private static final Logger LOG = Logger.getLogger(OtlpJsonFileExporter.class.getName());

  private final Path path;
  private final OutputStream out;
  private boolean closed;

  /** Opens {@code path} for appending, creating its directory if missing. */
  OtlpJsonFileExporter(Path path) throws IOException {
    Path dir = path.toAbsolutePath().getParent();
    if (dir != null) {
      Files.createDirectories(dir);
    }
    this.path = path;
    this.out = new FileOutputStream(path.toFile(), true);
  }

  Path path() {
    return path;
  }

  @Override
  public synchronized CompletableResultCode export(Collection<SpanData> spans) {
    if (closed) {
      return CompletableResultCode.ofFailure();
    }
    if (spans.isEmpty()) {
      return CompletableResultCode.ofSuccess();
    }
    try {
      // The encoder closes the stream it writes to, so each batch is encoded in memory first; one
      // write per line also keeps lines whole for a reader tailing the file.
      ByteArrayOutputStream line = new ByteArrayOutputStream();
      TraceRequestMarshaler.create(spans).writeJsonTo(line);
      line.write('\n');
      line.writeTo(out);
      out.flush();
      return CompletableResultCode.ofSuccess();
    } catch (IOException | RuntimeException e) {
      LOG.log(Level.WARNING, "could not write " + spans.size() + " spans to " + path + ": " + e);
      return CompletableResultCode.ofFailure();
    }
  }

  @Override
  public CompletableResultCode flush() {
    return CompletableResultCode.ofSuccess(); // every export is flushed as it is written
  }

  @Override
  public synchronized CompletableResultCode shutdown() {
    if (closed) {
      return CompletableResultCode.ofSuccess();
    }
    closed = true;
    try {
      out.close();
      return CompletableResultCode.ofSuccess();
    } catch (IOException e) {
      return CompletableResultCode.ofFailure();
    }
  }
}
