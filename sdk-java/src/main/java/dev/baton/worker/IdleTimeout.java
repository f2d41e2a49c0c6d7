package dev.baton.worker;

import java.time.Duration;

/**
 * {@link Worker#runUntilIdle(Duration)} did not reach idle (every assigned partition read to its end,
 * every result acknowledged) in time. The worker has been closed; {@link #report()} says what it did.
 */
public class IdleTimeout extends BatonError {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "BATON_IDLE_TIMEOUT";

  private final transient RunReport report;

  public IdleTimeout(Duration timeout, RunReport report) {
    super(CODE, "worker not idle after " + timeout + ": " + report, null);
    this.report = report;
  }

  public RunReport report() {
    return report;
  }
}
