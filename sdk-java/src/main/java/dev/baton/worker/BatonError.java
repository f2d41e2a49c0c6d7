package dev.baton.worker;

/**
 * Base of every error the SDK defines. Unchecked, so handlers written as lambdas can throw it without
 * declaring it. The simple class name is what travels as {@code error.type}, and {@link #code()} is a
 * stable identifier shared with the Python and Node SDKs.
 */
public class BatonError extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final String code;

  protected BatonError(String code, String message, Throwable cause) {
    super(message, cause);
    this.code = code;
  }

  /** Stable code, e.g. {@code BATON_NON_RETRYABLE}; the same string in every Baton SDK. */
  public String code() {
    return code;
  }
}
