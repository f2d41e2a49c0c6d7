package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;

/** HTTP 404: unknown workflow, run or dead letter. */
public class NotFound extends ApiError {
  private static final long serialVersionUID = 1L;

  public NotFound(String message, int status, String errorCode, JsonNode details) {
    super(message, status, errorCode, details);
  }
}
