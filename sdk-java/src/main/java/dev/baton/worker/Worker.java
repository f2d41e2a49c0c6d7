package dev.baton.worker;

import dev.baton.worker.internal.Settings;
import dev.baton.worker.internal.WorkerIdentity;
import dev.baton.worker.internal.WorkerRuntime;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Baton worker: register handlers for actions, then {@link #start()}. Each job of a registered action
 * runs once per attempt across all workers of the same group, in any language.
 *
 * <pre>{@code
 * Worker worker = new Worker(); // env fallbacks, see WorkerBuilder
 * worker.register("step1", payload -> "Java processed: " + payload);
 * worker.start();               // blocks; SIGTERM/SIGINT or close() drain gracefully
 * }</pre>
 *
 * <p>Delivery is at-least-once: a job's offset is committed only after its result is acknowledged by
 * Kafka, so a crash means the job runs again elsewhere, never that it is lost.
 */
public final class Worker implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Worker.class);
  private static final Pattern ACTION = Pattern.compile("^[A-Za-z0-9._-]{1,200}$");

  private final Settings settings;
  private final WorkerIdentity identity = WorkerIdentity.create();
  private final Map<String, ContextJobHandler> handlers = new LinkedHashMap<>();
  private WorkerRuntime runtime;
  private Thread shutdownHook;
  private boolean closed;

  /** A worker configured from the {@code BATON_*} environment and defaults. */
  public Worker() {
    this(new WorkerBuilder().settings());
  }

  Worker(Settings settings) {
    this.settings = settings;
  }

  public static WorkerBuilder builder() {
    return new WorkerBuilder();
  }

  /** Registers a handler that takes only the payload. */
  public Worker register(String action, JobHandler handler) {
    checkAction(action);
    if (handler == null) {
      throw new IllegalArgumentException("handler for '" + action + "' must be callable");
    }
    return register(action, (payload, ctx) -> handler.handle(payload));
  }

  /** Registers a handler that takes the payload and the job's {@link JobContext}. */
  public synchronized Worker register(String action, ContextJobHandler handler) {
    checkAction(action);
    if (handler == null) {
      throw new IllegalArgumentException("handler for '" + action + "' must be callable");
    }
    if (handlers.containsKey(action)) {
      throw new IllegalArgumentException("action '" + action + "' is already registered");
    }
    if (runtime != null) {
      throw new WorkerStateError("register every action before the worker starts");
    }
    handlers.put(action, handler);
    return this;
  }

  /** Runs until {@link #close()} or JVM shutdown (SIGTERM, SIGINT), then returns after draining. */
  public void start() {
    startAsync();
    try {
      while (!runtime.awaitFinished(Duration.ofMinutes(1))) {
        // keep waiting: a worker runs until it is told to stop
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      close();
    }
  }

  /** Starts consuming in background threads and returns; stop with {@link #close()}. */
  public void startAsync() {
    launch(false);
  }

  /**
   * Burst mode, for tests and batch jobs: processes until every assigned partition has been read to its
   * end and every result is acknowledged, then stops gracefully.
   *
   * @throws IdleTimeout if that did not happen within {@code timeout} (the worker is closed)
   */
  public RunReport runUntilIdle(Duration timeout) {
    launch(true);
    boolean idle;
    try {
      idle = runtime.awaitFinished(timeout);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      idle = false;
    }
    close();
    if (!idle) {
      throw new IdleTimeout(timeout, report());
    }
    return report();
  }

  /**
   * Graceful stop: no new jobs, running ones finish (up to the drain timeout), offsets committed. Called
   * during start-up (SIGTERM while Kafka is unreachable), it ends the start-up at once.
   */
  @Override
  public void close() {
    WorkerRuntime current;
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
      current = runtime;
    }
    // Outside the lock: start-up runs outside it too, so a stop never waits for Kafka to answer.
    if (current != null) {
      current.stop();
    }
    removeShutdownHook();
  }

  /** {@code java-<hostname>-<pid>-<4 hex>}, as sent in results and presence heartbeats. */
  public String id() {
    return identity.id();
  }

  /** Counts so far (completed, failed, dead-lettered). */
  public RunReport report() {
    WorkerRuntime current;
    synchronized (this) {
      current = runtime;
    }
    return current == null ? new RunReport(0, 0, 0) : current.report();
  }

  private void launch(boolean untilIdle) {
    WorkerRuntime starting;
    synchronized (this) {
      if (runtime != null || closed) {
        throw new WorkerStateError("a worker starts once; build a new one");
      }
      if (handlers.isEmpty()) {
        throw new WorkerStateError("register at least one action before starting the worker");
      }
      starting = runtime = new WorkerRuntime(settings, identity, handlers);
      shutdownHook = new Thread(this::close, "baton-shutdown-" + identity.id());
      Runtime.getRuntime().addShutdownHook(shutdownHook);
    }
    try {
      starting.start(untilIdle);
    } catch (RuntimeException e) {
      LOG.error("worker {} failed to start: {}", identity.id(), e.toString());
      close();
      throw e;
    }
  }

  /** Per-job entries the worker holds now (tracked offsets, deadline watches): tests check it stays bounded. */
  int bookkeeping() {
    WorkerRuntime current;
    synchronized (this) {
      current = runtime;
    }
    return current == null ? 0 : current.bookkeeping();
  }

  private void removeShutdownHook() {
    if (shutdownHook == null || Thread.currentThread() == shutdownHook) {
      return;
    }
    try {
      Runtime.getRuntime().removeShutdownHook(shutdownHook);
    } catch (IllegalStateException e) {
      // the JVM is already shutting down; the hook is running or done
    }
  }

  private static void checkAction(String action) {
    if (action == null || !ACTION.matcher(action).matches() || action.equals("DLT")) {
      throw new IllegalArgumentException(
          "invalid action name '" + action + "': use 1-200 of [A-Za-z0-9._-], not 'DLT'");
    }
  }
}
