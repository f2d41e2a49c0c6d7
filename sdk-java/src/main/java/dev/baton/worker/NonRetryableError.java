package dev.baton.worker;

/**
 * Thrown by a handler when retrying cannot help (bad input, a declined card): the result is FAILED with
 * {@code retryable=false} and the orchestrator dead-letters the step at once.
 */
public class NonRetryableError extends BatonError {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "BATON_NON_RETRYABLE";

  public NonRetryableError(String message) {
    this(message, null);
  }

  public NonRetryableError(String message, Throwable cause) {
    super(CODE, message, cause);
  }
}
