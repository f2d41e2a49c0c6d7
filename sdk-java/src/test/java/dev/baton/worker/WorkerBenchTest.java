package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Jobs/s of one worker with a no-op handler: pre-produce N jobs, then time the drain with runUntilIdle
 * (group join included). Not in the default run; see README ("Benchmark").
 */
@Tag("bench")
class WorkerBenchTest {
  private static final int JOBS = Integer.getInteger("bench.jobs", 50_000);

  @Test
  void shouldReportJobsPerSecondWhenHandlerIsNoOp() throws Exception {
    try (TestKafka kafka = new TestKafka()) {
      kafka.createJobTopics(6, "noop");
      produce(kafka, JOBS);
      Worker worker = kafka.worker().concurrency(Integer.getInteger("bench.concurrency", 8)).build();
      worker.register("noop", payload -> null);
      long start = System.nanoTime();
      RunReport report = worker.runUntilIdle(Duration.ofMinutes(5));
      double seconds = (System.nanoTime() - start) / 1e9;
      System.out.printf("BENCH one Java worker, no-op handler: %d jobs in %.2f s = %.0f jobs/s%n",
          report.completed(), seconds, report.completed() / seconds);
      assertThat(report.completed()).isEqualTo(JOBS);
    }
  }

  private static void produce(TestKafka kafka, int count) throws Exception {
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(Map.of(
        ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, TestKafka.BOOTSTRAP, ProducerConfig.LINGER_MS_CONFIG, 10,
        ProducerConfig.BATCH_SIZE_CONFIG, 262_144), new ByteArraySerializer(), new ByteArraySerializer())) {
      for (int i = 0; i < count; i++) {
        String runId = "run-" + i;
        producer.send(new ProducerRecord<>(kafka.prefix + "jobs.noop", runId.getBytes(StandardCharsets.UTF_8),
            TestKafka.job("noop", "job-" + i, runId, "{\"i\":" + i + "}").getBytes(StandardCharsets.UTF_8)));
      }
      producer.flush();
    }
  }
}
