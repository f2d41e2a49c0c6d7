package dev.baton.worker;

/**
 * A handler that needs only the payload: {@code payload -> "Java processed: " + payload}.
 *
 * <p>The payload is the job's {@code input} as plain Java values (String, Integer/Long/Double, Boolean,
 * List, Map, or null), so string concatenation prints the same text as the Python and Node SDKs. The return
 * value becomes the output (null for none); a returned {@link java.util.concurrent.CompletionStage} is
 * awaited. Throwing fails the attempt: see {@link NonRetryableError} and {@link RetryLater}.
 */
@FunctionalInterface
public interface JobHandler {
  Object handle(Object payload) throws Exception;
}
