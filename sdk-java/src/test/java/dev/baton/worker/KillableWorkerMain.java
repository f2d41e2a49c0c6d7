package dev.baton.worker;

import java.time.Duration;

/**
 * A worker in its own JVM, for the crash test: it announces each job it starts on stdout, then "works"
 * until the test SIGKILLs the process. Args: bootstrap servers, topic prefix, group id.
 */
public final class KillableWorkerMain {
  private KillableWorkerMain() {}

  public static void main(String[] args) throws Exception {
    Worker worker = Worker.builder().bootstrapServers(args[0]).topicPrefix(args[1]).groupId(args[2])
        .topicPartitions(1)
        // Let the group notice the death in seconds rather than the 45 s default.
        .consumerProperty("session.timeout.ms", 6000)
        .consumerProperty("heartbeat.interval.ms", 1000)
        .build();
    worker.register("crashy", (payload, ctx) -> {
      System.out.println("STARTED " + ctx.jobId());
      System.out.flush();
      Thread.sleep(Duration.ofMinutes(5).toMillis()); // never finishes: the test kills us first
      return "unreachable";
    });
    worker.start();
  }
}
