package dev.baton;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;

/** {@link BatonClient#waitForRun(String, Duration)} ran out of time; {@link #run()} is the run as it stood. */
public class WaitTimeout extends ApiError {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "BATON_WAIT_TIMEOUT";

  private final transient JsonNode run;

  public WaitTimeout(String message, JsonNode run) {
    super(CODE, message, 0, null, null, null);
    this.run = run;
  }

  /** The run detail of the last long poll (not terminal). */
  public JsonNode run() {
    return run;
  }
}
