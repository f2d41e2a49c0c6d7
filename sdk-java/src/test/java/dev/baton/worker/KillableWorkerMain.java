package dev.baton.worker;

import java.time.Duration;

/**
 * A worker in its own JVM, for the crash test: it announces each job it starts on stdout, then "works"
 * until the test kills the process. Args: bootstrap servers, topic prefix, group id, and the job's work
 * in milliseconds (default: longer than any test).
 */
public final class KillableWorkerMain {
  private KillableWorkerMain() {}

  public static void main(String[] args) throws Exception {
    long workMillis = args.length > 3 ? Long.parseLong(args[3]) : Duration.ofMinutes(5).toMillis();
    Worker worker = Worker.builder().bootstrapServers(args[0]).topicPrefix(args[1]).groupId(args[2])
        .topicPartitions(1)
        .concurrency(3)
        // Let the group notice the death in seconds rather than the 45 s default.
        .consumerProperty("session.timeout.ms", 6000)
        .consumerProperty("heartbeat.interval.ms", 1000)
        .build();
    worker.register("crashy", (payload, ctx) -> {
      System.out.println("STARTED " + ctx.jobId());
      System.out.flush();
      Thread.sleep(workMillis);
      return "child finished " + ctx.jobId();
    });
    worker.start();
  }
}
