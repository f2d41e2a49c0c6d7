package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;

/** HTTP 401: the server requires a bearer token ({@code apiKey} / {@code BATON_API_KEY}) and got none. */
public class Unauthorized extends ApiError {
  private static final long serialVersionUID = 1L;

  public Unauthorized(String message, int status, String errorCode, JsonNode details) {
    super(message, status, errorCode, details);
  }
}
