package dev.baton.examples;

import dev.baton.worker.Worker;
import dev.baton.worker.WorkerBuilder;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The original design's Java worker, unchanged apart from the package, plus the demo actions and, when
 * BATON_TRACE_DIR or OTEL_EXPORTER_OTLP_ENDPOINT is set, an OpenTelemetry SDK for its spans. Kafka and
 * the group come from BATON_KAFKA_BOOTSTRAP_SERVERS, BATON_WORKER_GROUP, etc.; Ctrl-C drains gracefully.
 */
public class ExampleWorkerApp {
    public static void main(String[] args) {
        OpenTelemetrySdk otel = tracing();
        WorkerBuilder builder = Worker.builder();
        if (otel != null) {
            builder.openTelemetry(otel);
        }
        Worker worker = builder.build();

        worker.register("step1", payload -> {
            return "Java processed: " + payload;
        });
        DemoActions.register(worker);

        Runnable flush = otel == null ? () -> { } : closeOnce(otel);
        if (otel != null) {
            flushAtExit(Thread.currentThread(), flush);
        }
        worker.start();
        flush.run();
    }

    private static OpenTelemetrySdk tracing() {
        try {
            return ExampleTracing.fromEnv(System::getenv, ProcessHandle.current().pid());
        } catch (IllegalArgumentException | UncheckedIOException e) {
            System.err.println("baton-worker-java: " + e.getMessage());
            System.exit(2);
            return null;
        }
    }

    private static Runnable closeOnce(OpenTelemetrySdk otel) {
        AtomicBoolean closed = new AtomicBoolean();
        return () -> {
            if (closed.compareAndSet(false, true)) {
                otel.close(); // ends the batch processors, which export what they still hold
            }
        };
    }

    /**
     * On SIGTERM the worker drains in its own shutdown hook while main() is still in start(); hooks run
     * in no set order, so this one waits for main() to get past the drain before closing the SDK.
     */
    private static void flushAtExit(Thread main, Runnable flush) {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                main.join(Duration.ofSeconds(60).toMillis());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            flush.run();
        }, "baton-example-otel-flush"));
    }
}
