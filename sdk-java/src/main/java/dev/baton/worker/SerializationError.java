package dev.baton.worker;

/** The value a handler returned cannot be written as JSON; reported as a non-retryable failure. */
public class SerializationError extends BatonError {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "BATON_SERIALIZATION";

  public SerializationError(String message, Throwable cause) {
    super(CODE, message, cause);
  }
}
