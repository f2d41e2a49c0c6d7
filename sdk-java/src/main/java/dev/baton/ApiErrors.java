package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;

/** Maps an error answer to its {@link ApiError} subclass, from the {@code {"error": {...}}} envelope. */
final class ApiErrors {
  // java.net.http exposes no reason phrase: the standard ones, for answers without an envelope.
  private static final Map<Integer, String> REASONS = Map.ofEntries(
      Map.entry(400, "Bad Request"), Map.entry(401, "Unauthorized"), Map.entry(403, "Forbidden"),
      Map.entry(404, "Not Found"), Map.entry(405, "Method Not Allowed"), Map.entry(408, "Request Timeout"),
      Map.entry(409, "Conflict"), Map.entry(413, "Content Too Large"), Map.entry(415, "Unsupported Media Type"),
      Map.entry(422, "Unprocessable Content"), Map.entry(429, "Too Many Requests"),
      Map.entry(500, "Internal Server Error"), Map.entry(502, "Bad Gateway"),
      Map.entry(503, "Service Unavailable"), Map.entry(504, "Gateway Timeout"));

  private ApiErrors() {}

  /** The typed error of a non-2xx answer; a body that is not an envelope (an HTML page) is never the message. */
  static ApiError of(int status, byte[] body) {
    JsonNode envelope = envelope(body);
    JsonNode message = envelope.path("message");
    String text = message.isTextual() && !message.asText().isEmpty()
        ? message.asText() : REASONS.getOrDefault(status, "HTTP " + status);
    JsonNode code = envelope.path("code");
    String errorCode = code.isTextual() ? code.asText() : null;
    JsonNode details = envelope.hasNonNull("details") ? envelope.get("details") : null;
    switch (status) {
      case 400: return new BadRequest(text, status, errorCode, details);
      case 401: return new Unauthorized(text, status, errorCode, details);
      case 403: return new Forbidden(text, status, errorCode, details);
      case 404: return new NotFound(text, status, errorCode, details);
      case 409: return new Conflict(text, status, errorCode, details);
      case 413: return new RequestTooLarge(text, status, errorCode, details);
      case 422: return new ValidationFailed(text, status, errorCode, details);
      case 503: return new ServiceUnavailable(text, status, errorCode, details);
      default: return new ApiError(text, status, errorCode, details);
    }
  }

  private static JsonNode envelope(byte[] body) {
    try {
      JsonNode error = Http.JSON.readTree(body).path("error");
      return error.isObject() ? error : Http.JSON.missingNode();
    } catch (Exception notJson) {
      return Http.JSON.missingNode();
    }
  }
}
