package dev.baton.worker.internal;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.time.Instant;
import java.util.regex.Pattern;

/** A decoded job envelope (protocol v1). Unknown fields are ignored so newer producers stay readable. */
public record Job(
    String jobId,
    String runId,
    String workflowId,
    int workflowVersion,
    String step,
    String action,
    int attempt,
    int maxAttempts,
    JsonNode input,
    Instant deadline,
    Long timeoutMs,
    Instant createdAt) {

  private static final Pattern ACTION = Pattern.compile("^[A-Za-z0-9._-]{1,200}$");

  /** Why a record cannot be a job; the message goes into the DLT headers. */
  public static final class Undecodable extends Exception {
    private static final long serialVersionUID = 1L;

    Undecodable(String reason) {
      super(reason, null, false, false);
    }
  }

  public static Job decode(byte[] raw) throws Undecodable {
    JsonNode root = parse(raw);
    if (!root.isObject()) {
      throw new Undecodable("not an object");
    }
    JsonNode v = root.get("v");
    if (v == null) {
      throw new Undecodable("missing field v");
    }
    if (!v.isIntegralNumber() || v.asLong() != 1) {
      throw new Undecodable("unsupported envelope version " + v);
    }
    String action = text(root, "action", 200);
    if (!ACTION.matcher(action).matches()) {
      throw new Undecodable("invalid action " + action);
    }
    if (!root.has("input")) {
      throw new Undecodable("missing field input");
    }
    JsonNode timeout = root.get("timeout_ms");
    Long timeoutMs = timeout == null || timeout.isNull() ? null : (long) positive(root, "timeout_ms");
    return new Job(text(root, "job_id", 200), text(root, "run_id", 200), text(root, "workflow_id", 0),
        positive(root, "workflow_version"), text(root, "step", 0), action, positive(root, "attempt"),
        positive(root, "max_attempts"), root.get("input"), time(root, "deadline"), timeoutMs,
        time(root, "created_at"));
  }

  /** Best effort for DLT headers: the job id of a record that failed to decode, or null. */
  public static String peekJobId(byte[] raw) {
    try {
      JsonNode id = Json.MAPPER.readTree(raw).get("job_id");
      return id != null && id.isTextual() ? id.asText() : null;
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  public String idempotencyKey() {
    return runId + ":" + step;
  }

  private static JsonNode parse(byte[] raw) throws Undecodable {
    if (raw == null || raw.length == 0) {
      throw new Undecodable("empty");
    }
    try {
      return Json.MAPPER.readTree(raw);
    } catch (JsonProcessingException e) {
      throw new Undecodable("malformed JSON: " + e.getOriginalMessage());
    } catch (IOException e) {
      throw new Undecodable("malformed JSON: " + e.getMessage());
    }
  }

  /** @param maxLength 0 for no upper bound */
  private static String text(JsonNode root, String field, int maxLength) throws Undecodable {
    JsonNode node = root.get(field);
    if (node == null) {
      throw new Undecodable("missing field " + field);
    }
    if (!node.isTextual() || node.asText().isEmpty()
        || (maxLength > 0 && node.asText().length() > maxLength)) {
      throw new Undecodable("wrong type or length " + field);
    }
    return node.asText();
  }

  private static int positive(JsonNode root, String field) throws Undecodable {
    JsonNode node = root.get(field);
    if (node == null) {
      throw new Undecodable("missing field " + field);
    }
    if (!node.isIntegralNumber() || !node.canConvertToInt()) {
      throw new Undecodable("wrong type " + field);
    }
    if (node.asInt() < 1) {
      throw new Undecodable(field + " < 1");
    }
    return node.asInt();
  }

  private static Instant time(JsonNode root, String field) throws Undecodable {
    JsonNode node = root.get(field);
    if (node == null) {
      throw new Undecodable("missing field " + field);
    }
    Instant instant = node.isTextual() ? Json.parseTimestamp(node.asText()) : null;
    if (instant == null) {
      throw new Undecodable("bad " + field);
    }
    return instant;
  }
}
