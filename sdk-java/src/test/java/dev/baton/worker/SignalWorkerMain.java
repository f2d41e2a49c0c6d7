package dev.baton.worker;

import java.time.Duration;
import java.util.concurrent.CountDownLatch;

/**
 * A worker in its own JVM for the signal tests. Prints "STARTING" just before {@code start()} and
 * "STARTED <job id>" when a handler begins. Args: bootstrap servers, topic prefix, group id, handler mode
 * ({@code sleep}: a long interruptible sleep; {@code stuck}: never returns, swallowing interrupts), drain
 * timeout in milliseconds.
 */
public final class SignalWorkerMain {
  private SignalWorkerMain() {}

  public static void main(String[] args) {
    boolean stuck = args[3].equals("stuck");
    Worker worker = Worker.builder().bootstrapServers(args[0]).topicPrefix(args[1]).groupId(args[2])
        .topicPartitions(1)
        .concurrency(1)
        .drainTimeout(Duration.ofMillis(Long.parseLong(args[4])))
        .build();
    worker.register("signal", (payload, ctx) -> {
      System.out.println("STARTED " + ctx.jobId());
      System.out.flush();
      if (stuck) {
        neverReturn();
      }
      Thread.sleep(Duration.ofMinutes(5).toMillis());
      return "finished";
    });
    System.out.println("STARTING");
    System.out.flush();
    worker.start();
  }

  private static void neverReturn() {
    CountDownLatch never = new CountDownLatch(1);
    while (true) {
      try {
        never.await();
      } catch (InterruptedException e) {
        // swallowed on purpose: the handler the worker cannot stop
      }
    }
  }
}
