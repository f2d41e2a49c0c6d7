package dev.baton.worker.internal;

import dev.baton.worker.BatonError;
import dev.baton.worker.NonRetryableError;
import dev.baton.worker.RetryLater;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/** The {@code error} object of a FAILED result, mapped from what a handler threw. */
public record Failure(String type, String message, String stacktrace, boolean retryable, Long retryAfterMs) {

  public static Failure of(Throwable thrown) {
    Throwable error = unwrap(thrown);
    if (error instanceof RetryLater later) {
      // Control flow, not a bug: a stack trace would only be noise in the run's history.
      return new Failure("RetryLater", later.getMessage(), null, true, later.delay().toMillis());
    }
    if (error instanceof NonRetryableError) {
      return new Failure("NonRetryableError", message(error), stackTrace(error), false, null);
    }
    if (error instanceof BatonError) {
      // PayloadTooLarge, SerializationError: the same output would fail the same way again.
      return new Failure(error.getClass().getSimpleName(), message(error), stackTrace(error), false, null);
    }
    return new Failure(error.getClass().getSimpleName(), message(error), stackTrace(error), true, null);
  }

  /** A CompletionStage wraps what the handler threw; the orchestrator should see the handler's error. */
  private static Throwable unwrap(Throwable thrown) {
    Throwable error = thrown;
    while ((error instanceof CompletionException || error instanceof ExecutionException)
        && error.getCause() != null) {
      error = error.getCause();
    }
    return error;
  }

  private static String message(Throwable error) {
    return error.getMessage() != null ? error.getMessage() : "";
  }

  private static String stackTrace(Throwable error) {
    StringWriter out = new StringWriter();
    error.printStackTrace(new PrintWriter(out));
    return out.toString();
  }
}
