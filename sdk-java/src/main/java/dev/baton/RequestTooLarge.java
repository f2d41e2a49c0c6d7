package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;

/** HTTP 413: the body, or the first job it would create, is over the server's payload limit. */
public class RequestTooLarge extends ApiError {
  private static final long serialVersionUID = 1L;

  public RequestTooLarge(String message, int status, String errorCode, JsonNode details) {
    super(message, status, errorCode, details);
  }
}
