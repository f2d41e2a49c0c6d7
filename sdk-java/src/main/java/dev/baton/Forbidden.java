package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;

/** HTTP 403: the bearer token is not one of the server's {@code BATON_API_KEYS}. */
public class Forbidden extends ApiError {
  private static final long serialVersionUID = 1L;

  public Forbidden(String message, int status, String errorCode, JsonNode details) {
    super(message, status, errorCode, details);
  }
}
