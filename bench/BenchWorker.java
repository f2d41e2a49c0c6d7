// Bench worker for the Java SDK: a no-op handler that records handler entry/exit times, same CSV as
// bench/worker.py (job_id,run_id,step,attempt,t_entry,t_exit,lang). Launched by bench/run.py in
// source-file mode: java -cp <sdk-java classes + runtime deps> bench/BenchWorker.java
// Kafka address, topic prefix, group and concurrency come from the usual BATON_* variables.
import dev.baton.worker.Worker;
import java.io.FileWriter;
import java.io.IOException;
import java.io.Writer;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;

public class BenchWorker {
  static final Map<String, Object> OUTPUT = Map.of("ok", true, "pad", "x".repeat(180));
  static final ConcurrentLinkedQueue<String> LINES = new ConcurrentLinkedQueue<>();

  static String now() {
    Instant t = Instant.now();
    return String.format("%d.%06d", t.getEpochSecond(), t.getNano() / 1000);
  }

  static synchronized void flush(Writer out) {
    try {
      String line;
      while ((line = LINES.poll()) != null) {
        out.write(line);
      }
      out.flush();
    } catch (IOException e) {
      System.err.println("bench record write failed: " + e);
    }
  }

  public static void main(String[] args) throws IOException {
    Writer out = new FileWriter(System.getenv("BENCH_RECORD_FILE"), true);
    Thread flusher = new Thread(() -> {
      while (true) {
        try {
          Thread.sleep(100);
        } catch (InterruptedException e) {
          return;
        }
        flush(out);
      }
    }, "bench-flusher");
    flusher.setDaemon(true);
    flusher.start();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> flush(out)));
    Worker worker = new Worker();
    String actions = System.getenv().getOrDefault("BENCH_ACTIONS", "bench.noop");
    for (String action : actions.split(",")) {
      worker.register(action, (payload, ctx) -> {
        String entry = now();
        LINES.add(ctx.jobId() + "," + ctx.runId() + "," + ctx.step() + "," + ctx.attempt() + "," + entry + ","
            + now() + ",java\n");
        return OUTPUT;
      });
    }
    worker.start(); // blocks; SIGTERM/SIGINT drain gracefully
    flush(out);
  }
}
