package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;

/** HTTP 409: an Idempotency-Key reused with another body, or a run or dead letter in the wrong state. */
public class Conflict extends ApiError {
  private static final long serialVersionUID = 1L;

  public Conflict(String message, int status, String errorCode, JsonNode details) {
    super(message, status, errorCode, details);
  }
}
