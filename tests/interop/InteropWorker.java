import dev.baton.worker.Worker;

/**
 * Interop fixture: a Java worker registering the actions named on the command line; each handler
 * returns "java:<payload>". Kafka address, group and topic prefix come from BATON_* env vars. Run as a
 * single-file program with sdk-java's classes and dependencies on the class path:
 * {@code java -cp <classpath> tests/interop/InteropWorker.java interop.java interop.shared}.
 */
public final class InteropWorker {
  private InteropWorker() {}

  public static void main(String[] args) {
    Worker worker = new Worker();
    for (String action : args) {
      worker.register(action, payload -> "java:" + payload);
    }
    System.out.println("STARTING " + worker.id());
    System.out.flush();
    worker.start(); // until SIGTERM, which drains in-flight jobs first
  }
}
