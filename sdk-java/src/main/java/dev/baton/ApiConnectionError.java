package dev.baton;

/** No answer from the API: unreachable, connection refused or dropped, or no reply within the timeout. */
public class ApiConnectionError extends ApiError {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "BATON_API_CONNECTION";

  public ApiConnectionError(String message, Throwable cause) {
    super(CODE, message, 0, null, null, cause);
  }
}
