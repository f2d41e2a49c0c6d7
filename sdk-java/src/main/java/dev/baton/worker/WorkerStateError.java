package dev.baton.worker;

/** A call the worker's lifecycle does not allow now: registering after start, starting twice. */
public class WorkerStateError extends BatonError {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "BATON_WORKER_STATE";

  public WorkerStateError(String message) {
    super(CODE, message, null);
  }
}
