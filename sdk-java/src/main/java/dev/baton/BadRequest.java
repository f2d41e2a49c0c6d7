package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;

/** HTTP 400: the request body is not valid JSON. */
public class BadRequest extends ApiError {
  private static final long serialVersionUID = 1L;

  public BadRequest(String message, int status, String errorCode, JsonNode details) {
    super(message, status, errorCode, details);
  }
}
