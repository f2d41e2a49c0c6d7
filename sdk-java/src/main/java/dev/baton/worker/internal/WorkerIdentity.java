package dev.baton.worker.internal;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.concurrent.ThreadLocalRandom;

/** {@code java-<hostname>-<pid>-<4 hex>}: unique per worker instance, readable in {@code GET /workers}. */
public record WorkerIdentity(String id, String hostname, long pid) {
  public static final String LANGUAGE = "java";

  public static WorkerIdentity create() {
    String host = localHostname();
    long pid = ProcessHandle.current().pid();
    String suffix = String.format("%04x", ThreadLocalRandom.current().nextInt(0x10000));
    return new WorkerIdentity(LANGUAGE + "-" + host + "-" + pid + "-" + suffix, host, pid);
  }

  private static String localHostname() {
    String fromEnv = System.getenv("HOSTNAME");
    if (fromEnv != null && !fromEnv.isBlank()) {
      return fromEnv;
    }
    try {
      return InetAddress.getLocalHost().getHostName();
    } catch (UnknownHostException e) {
      return "unknown";
    }
  }
}
