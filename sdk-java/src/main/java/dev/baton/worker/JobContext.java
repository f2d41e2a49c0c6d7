package dev.baton.worker;

import java.time.Instant;
import org.slf4j.Logger;

/** What a handler may know about the job it runs. Safe to use from any thread. */
public interface JobContext {
  /** Names one attempt of one step; a redelivery of that attempt carries the same id. */
  String jobId();

  String runId();

  String workflowId();

  String step();

  String action();

  /** 1 for the first attempt. */
  int attempt();

  int maxAttempts();

  /** {@code "<runId>:<step>"}: stable across retries, for side effects that must happen once. */
  String idempotencyKey();

  /**
   * When the orchestrator gives up on this attempt; moved forward by {@link #heartbeat()}. The worker
   * itself stops waiting {@code deadlineGrace} later: it interrupts the handler and answers Timeout.
   */
  Instant deadline();

  /**
   * Tells the orchestrator the handler is alive, which extends the attempt's deadline. Non-blocking: the
   * HEARTBEAT result is sent in the background.
   */
  void heartbeat();

  /** A logger whose lines carry the job's fields in the MDC (while the handler runs on its thread). */
  Logger logger();
}
