package dev.baton.worker;

/**
 * The encoded output of a handler is larger than the worker's {@code maxPayloadBytes}. The SDK reports it
 * as a non-retryable failure rather than truncating: running the handler again would produce the same size.
 */
public class PayloadTooLarge extends BatonError {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "BATON_PAYLOAD_TOO_LARGE";

  public PayloadTooLarge(long size, long limit) {
    super(CODE, "output is " + size + " bytes, over the limit of " + limit + " bytes", null);
  }
}
