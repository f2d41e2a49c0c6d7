package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;

/** HTTP 422: an invalid definition, input, id, wait or cursor; {@link #details()} says what. */
public class ValidationFailed extends ApiError {
  private static final long serialVersionUID = 1L;

  public ValidationFailed(String message, int status, String errorCode, JsonNode details) {
    super(message, status, errorCode, details);
  }
}
