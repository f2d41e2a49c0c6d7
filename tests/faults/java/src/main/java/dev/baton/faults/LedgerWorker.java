package dev.baton.faults;

import dev.baton.worker.Worker;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * Ledger worker for the fault suite: every registered action (LEDGER_ACTIONS) appends
 * "start|done,java,job_id,attempt,run_id,step" to LEDGER_FILE, sleeping LEDGER_SLEEP_MS in between.
 */
public final class LedgerWorker {
    private static final Object LOCK = new Object();

    private static void record(String path, String line) {
        synchronized (LOCK) {
            try (FileOutputStream out = new FileOutputStream(path, true)) {
                out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
                out.getFD().sync();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        }
    }

    public static void main(String[] args) {
        String ledger = System.getenv("LEDGER_FILE");
        long sleepMs = Long.parseLong(System.getenv().getOrDefault("LEDGER_SLEEP_MS", "0"));
        Worker worker = new Worker();
        for (String action : System.getenv("LEDGER_ACTIONS").split(",")) {
            worker.register(action, (payload, ctx) -> {
                String id = String.join(",", "java", ctx.jobId(), Integer.toString(ctx.attempt()), ctx.runId(), ctx.step());
                record(ledger, "start," + id);
                if (sleepMs > 0) {
                    Thread.sleep(sleepMs);
                }
                record(ledger, "done," + id);
                return payload;
            });
        }
        worker.start();
    }
}
