package dev.baton.worker;

import java.time.Duration;
import java.util.Objects;

/**
 * Thrown by a handler to ask for another attempt after {@link #delay()} instead of the retry policy's
 * interval (e.g. a rate-limited API said "come back in 30 s"). The attempt still counts.
 */
public class RetryLater extends BatonError {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "BATON_RETRY_LATER";

  private final Duration delay;

  public RetryLater(Duration delay) {
    this(delay, null);
  }

  /** @param reason replaces the default message {@code "retry in <ms> ms"} when not null */
  public RetryLater(Duration delay, String reason) {
    super(CODE, reason != null ? reason : "retry in " + checked(delay).toMillis() + " ms", null);
    this.delay = checked(delay);
  }

  public Duration delay() {
    return delay;
  }

  private static Duration checked(Duration delay) {
    Objects.requireNonNull(delay, "delay");
    if (delay.isNegative()) {
      throw new IllegalArgumentException("delay must not be negative");
    }
    return delay;
  }
}
