package dev.baton.worker.internal;

import dev.baton.worker.BatonError;
import dev.baton.worker.NonRetryableError;
import dev.baton.worker.RetryLater;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/**
 * The {@code error} object of a FAILED result, mapped from what a handler threw. Never throws itself:
 * a handler's exception may have a {@code getMessage()} or {@code toString()} that throws, and the job
 * must still get its one result. Message and stack trace are bounded (see {@link Bounds}).
 */
public record Failure(String type, String message, String stacktrace, boolean retryable, Long retryAfterMs) {

  public Failure {
    message = message == null ? "" : Bounds.message(message);
    stacktrace = stacktrace == null ? null : Bounds.stacktrace(stacktrace);
  }

  public static Failure of(Throwable thrown) {
    Throwable error = unwrap(thrown);
    if (error instanceof RetryLater later) {
      // Control flow, not a bug: a stack trace would only be noise in the run's history.
      return new Failure("RetryLater", message(error), null, true, later.delay().toMillis());
    }
    if (error instanceof NonRetryableError) {
      return new Failure("NonRetryableError", message(error), stackTrace(error), false, null);
    }
    // PayloadTooLarge, SerializationError: the same output would fail the same way again.
    boolean retryable = !(error instanceof BatonError);
    return new Failure(type(error), message(error), stackTrace(error), retryable, null);
  }

  /** The worker gave up waiting for a handler past its deadline; {@code stack} is where it was stuck. */
  public static Failure timeout(long lateMs, long graceMs, String stack) {
    return new Failure("Timeout", "handler still running " + lateMs + " ms after the job's deadline (grace "
        + graceMs + " ms); abandoned", stack, true, null);
  }

  /** Kafka refused the result record for good (too large for the topic or the producer). */
  public static Failure refused(int size, Throwable why) {
    return new Failure("PayloadTooLarge", "result of " + size + " bytes refused by Kafka: " + describe(why),
        null, false, null);
  }

  /** A CompletionStage wraps what the handler threw; the orchestrator should see the handler's error. */
  static Throwable unwrap(Throwable thrown) {
    Throwable error = thrown;
    while ((error instanceof CompletionException || error instanceof ExecutionException)
        && error.getCause() != null) {
      error = error.getCause();
    }
    return error;
  }

  /** The simple class name; anonymous and local classes have none, so they report their binary name. */
  private static String type(Throwable error) {
    String simple = error.getClass().getSimpleName();
    return simple.isEmpty() ? error.getClass().getName() : simple;
  }

  private static String message(Throwable error) {
    try {
      String message = error.getMessage();
      return message != null ? message : "";
    } catch (Throwable e) { // the handler's exception is broken; still report it
      return "<getMessage() threw " + type(e) + ">";
    }
  }

  /** The class name and the message (or what prevented reading it): never calls the error's toString. */
  static String describe(Throwable error) {
    return error.getClass().getName() + ": " + message(error);
  }

  private static String stackTrace(Throwable error) {
    StringWriter out = new StringWriter();
    try {
      error.printStackTrace(new PrintWriter(out));
      return out.toString();
    } catch (Throwable e) { // printStackTrace calls toString on every throwable of the chain
      return framesOnly(error, e);
    }
  }

  private static String framesOnly(Throwable error, Throwable why) {
    StringBuilder out = new StringBuilder(describe(error))
        .append(" (toString() threw ").append(type(why)).append(")\n");
    for (StackTraceElement frame : error.getStackTrace()) {
      out.append("\tat ").append(frame).append('\n');
    }
    return out.toString();
  }
}
