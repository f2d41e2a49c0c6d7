package dev.baton.worker.internal;

import dev.baton.worker.JobContext;
import java.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The {@link JobContext} of one running job. */
final class Context implements JobContext {
  private static final Logger LOG = LoggerFactory.getLogger("dev.baton.worker.job");

  private final Job job;
  private final Runnable sendHeartbeat;
  private volatile Instant deadline;

  Context(Job job, Runnable sendHeartbeat) {
    this.job = job;
    this.sendHeartbeat = sendHeartbeat;
    this.deadline = job.deadline();
  }

  @Override
  public String jobId() {
    return job.jobId();
  }

  @Override
  public String runId() {
    return job.runId();
  }

  @Override
  public String workflowId() {
    return job.workflowId();
  }

  @Override
  public String step() {
    return job.step();
  }

  @Override
  public String action() {
    return job.action();
  }

  @Override
  public int attempt() {
    return job.attempt();
  }

  @Override
  public int maxAttempts() {
    return job.maxAttempts();
  }

  @Override
  public String idempotencyKey() {
    return job.idempotencyKey();
  }

  @Override
  public Instant deadline() {
    return deadline;
  }

  @Override
  public void heartbeat() {
    // The engine extends the deadline by the step timeout from the heartbeat's arrival; mirror that
    // locally so a handler that checks ctx.deadline() sees the same moment.
    if (job.timeoutMs() != null) {
      deadline = Instant.now().plusMillis(job.timeoutMs());
    }
    sendHeartbeat.run();
  }

  @Override
  public Logger logger() {
    return LOG;
  }

  @Override
  public String toString() {
    return "JobContext[jobId=" + job.jobId() + ", runId=" + job.runId() + ", step=" + job.step()
        + ", attempt=" + job.attempt() + "]";
  }
}
