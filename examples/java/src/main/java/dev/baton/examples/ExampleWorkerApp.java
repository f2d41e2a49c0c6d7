package dev.baton.examples;

import dev.baton.worker.Worker;

/**
 * The original design's Java worker, unchanged apart from the package, plus the demo actions. Kafka and
 * the group come from BATON_KAFKA_BOOTSTRAP_SERVERS, BATON_WORKER_GROUP, etc.; Ctrl-C drains gracefully.
 */
public class ExampleWorkerApp {
    public static void main(String[] args) {
        Worker worker = new Worker();

        worker.register("step1", payload -> {
            return "Java processed: " + payload;
        });
        DemoActions.register(worker);

        worker.start();
    }
}
