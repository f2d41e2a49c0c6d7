package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;
import dev.baton.worker.BatonError;
import java.util.StringJoiner;

/**
 * The Baton HTTP API answered with an error, or (for {@link ApiConnectionError} and {@link WaitTimeout})
 * gave no usable answer. {@link #code()} is the SDK's stable code ({@code BATON_API}), as for every
 * {@link BatonError}; the envelope's own {@code error.code} (e.g. {@code run_not_found}) is {@link #errorCode()}.
 * A status with no subclass of its own (500, 405, ...) is a plain {@code ApiError}.
 */
public class ApiError extends BatonError {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "BATON_API";

  private final int status;
  private final String errorCode;
  private final String apiMessage;
  private final transient JsonNode details;

  /**
   * @param message the envelope's {@code error.message}, else the HTTP reason: never a response body
   * @param status the HTTP status, 0 when there was no answer
   * @param errorCode the envelope's {@code error.code}, null when the body was not an envelope
   * @param details the envelope's {@code error.details}, null when absent
   */
  public ApiError(String message, int status, String errorCode, JsonNode details) {
    this(CODE, message, status, errorCode, details, null);
  }

  protected ApiError(String code, String message, int status, String errorCode, JsonNode details, Throwable cause) {
    super(code, prefixed(message, status, errorCode), cause);
    this.status = status;
    this.errorCode = errorCode;
    this.apiMessage = message;
    this.details = details;
  }

  /** The HTTP status; 0 when the API gave no answer. */
  public int status() {
    return status;
  }

  /** The error envelope's {@code error.code}, e.g. {@code run_not_found}; null without an envelope. */
  public String errorCode() {
    return errorCode;
  }

  /** The envelope's message (else the HTTP reason), without the status and code {@link #getMessage()} adds. */
  public String message() {
    return apiMessage;
  }

  /** The envelope's {@code error.details} (for a 422: what is invalid); null when absent. */
  public JsonNode details() {
    return details;
  }

  /** {@code "404 run_not_found: run 'x' does not exist"}: the status and code are in every log line. */
  private static String prefixed(String message, int status, String errorCode) {
    StringJoiner prefix = new StringJoiner(" ");
    if (status > 0) {
      prefix.add(Integer.toString(status));
    }
    if (errorCode != null) {
      prefix.add(errorCode);
    }
    return prefix.length() == 0 ? message : prefix + ": " + message;
  }
}
