package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;

/** HTTP 503: a service the server needs is down, or it holds too many waiters; retry later. */
public class ServiceUnavailable extends ApiError {
  private static final long serialVersionUID = 1L;

  public ServiceUnavailable(String message, int status, String errorCode, JsonNode details) {
    super(message, status, errorCode, details);
  }
}
