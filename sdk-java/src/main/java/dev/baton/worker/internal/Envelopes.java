package dev.baton.worker.internal;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonProcessingException;
import dev.baton.worker.PayloadTooLarge;
import dev.baton.worker.SerializationError;
import dev.baton.worker.Version;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Collection;

/**
 * Writes results and presence heartbeats (protocol v1). Streaming rather than building trees: this runs
 * once per job on the hot path.
 */
public final class Envelopes {
  private final WorkerIdentity identity;
  private final int maxPayloadBytes;

  public Envelopes(WorkerIdentity identity, int maxPayloadBytes) {
    this.identity = identity;
    this.maxPayloadBytes = maxPayloadBytes;
  }

  /** The handler's return value as JSON, or the typed error that replaces it. */
  public byte[] output(Object value) {
    byte[] bytes;
    try {
      bytes = Json.MAPPER.writeValueAsBytes(value);
    } catch (Throwable e) { // a getter may throw anything, a cycle may overflow the stack
      throw new SerializationError("output of type " + value.getClass().getName()
          + " is not JSON-serialisable: " + reason(e), e);
    }
    if (hasLoneSurrogateEscape(bytes)) {
      throw new SerializationError("output of type " + value.getClass().getName()
          + " contains a lone UTF-16 surrogate, which is not valid Unicode text", null);
    }
    if (bytes.length > maxPayloadBytes) {
      throw new PayloadTooLarge(bytes.length, maxPayloadBytes);
    }
    return bytes;
  }

  /** Jackson's own message, without the reference chain it appends (one entry per level, unbounded). */
  private static String reason(Throwable e) {
    return e instanceof JsonProcessingException json ? json.getOriginalMessage() : Failure.describe(e);
  }

  /**
   * Jackson writes a well-formed surrogate pair as UTF-8 but escapes a lone surrogate as a backslash-u
   * escape in D800-DFFF: valid JSON syntax, yet not Unicode text (PostgreSQL's jsonb rejects it). The
   * escape is real only when its backslash is not itself escaped, i.e. an odd run of backslashes.
   */
  static boolean hasLoneSurrogateEscape(byte[] json) {
    for (int i = 1; i + 4 < json.length; i++) {
      if (json[i] != 'u' || json[i - 1] != '\\' || (json[i + 1] != 'D' && json[i + 1] != 'd')) {
        continue;
      }
      byte third = json[i + 2];
      boolean surrogate = (third >= '8' && third <= '9') || (third >= 'A' && third <= 'F')
          || (third >= 'a' && third <= 'f');
      int slashes = 0;
      for (int j = i - 1; j >= 0 && json[j] == '\\'; j--) {
        slashes++;
      }
      if (surrogate && slashes % 2 == 1) {
        return true;
      }
    }
    return false;
  }

  public byte[] completed(Job job, byte[] output, Instant startedAt, Instant finishedAt) {
    return result(job, "COMPLETED", output, null, startedAt, finishedAt);
  }

  public byte[] failed(Job job, Failure failure, Instant startedAt, Instant finishedAt) {
    return result(job, "FAILED", null, failure, startedAt, finishedAt);
  }

  public byte[] heartbeat(Job job, Instant startedAt) {
    return result(job, "HEARTBEAT", null, null, startedAt, null);
  }

  public byte[] presence(String status, String groupId, Collection<String> actions, int concurrency,
      int inFlight, int stuckSlots, Instant startedAt) {
    return write(gen -> {
      gen.writeNumberField("v", 1);
      gen.writeStringField("worker_id", identity.id());
      gen.writeStringField("language", WorkerIdentity.LANGUAGE);
      gen.writeStringField("sdk_version", Version.SDK_VERSION);
      gen.writeStringField("hostname", identity.hostname());
      gen.writeNumberField("pid", identity.pid());
      gen.writeStringField("group_id", groupId);
      gen.writeArrayFieldStart("actions");
      for (String action : actions) {
        gen.writeString(action);
      }
      gen.writeEndArray();
      gen.writeNumberField("concurrency", concurrency);
      gen.writeNumberField("in_flight", inFlight);
      gen.writeNumberField("stuck_slots", stuckSlots);
      gen.writeStringField("status", status);
      gen.writeStringField("started_at", Json.timestamp(startedAt));
      gen.writeStringField("sent_at", Json.timestamp(Instant.now()));
    });
  }

  private byte[] result(Job job, String status, byte[] output, Failure failure, Instant startedAt,
      Instant finishedAt) {
    return write(gen -> {
      gen.writeNumberField("v", 1);
      gen.writeStringField("job_id", job.jobId());
      gen.writeStringField("run_id", job.runId());
      gen.writeStringField("step", job.step());
      gen.writeNumberField("attempt", job.attempt());
      gen.writeStringField("status", status);
      gen.writeFieldName("output");
      if (output == null) {
        gen.writeNull();
      } else {
        gen.writeRawValue(new String(output, StandardCharsets.UTF_8));
      }
      gen.writeFieldName("error");
      writeFailure(gen, failure);
      gen.writeObjectFieldStart("worker");
      gen.writeStringField("id", identity.id());
      gen.writeStringField("language", WorkerIdentity.LANGUAGE);
      gen.writeStringField("sdk_version", Version.SDK_VERSION);
      gen.writeEndObject();
      gen.writeStringField("started_at", Json.timestamp(startedAt));
      gen.writeStringField("finished_at", finishedAt == null ? null : Json.timestamp(finishedAt));
    });
  }

  private static void writeFailure(JsonGenerator gen, Failure failure) throws IOException {
    if (failure == null) {
      gen.writeNull();
      return;
    }
    gen.writeStartObject();
    gen.writeStringField("type", failure.type());
    gen.writeStringField("message", failure.message());
    gen.writeStringField("stacktrace", failure.stacktrace());
    gen.writeBooleanField("retryable", failure.retryable());
    if (failure.retryAfterMs() != null) {
      gen.writeNumberField("retry_after_ms", failure.retryAfterMs());
    }
    gen.writeEndObject();
  }

  private interface Fields {
    void write(JsonGenerator gen) throws IOException;
  }

  private static byte[] write(Fields fields) {
    ByteArrayOutputStream out = new ByteArrayOutputStream(512);
    try (JsonGenerator gen = Json.MAPPER.getFactory().createGenerator(out)) {
      gen.writeStartObject();
      fields.write(gen);
      gen.writeEndObject();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }
}
