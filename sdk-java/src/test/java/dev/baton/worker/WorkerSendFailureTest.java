package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Result sends that fail: a record Kafka refuses for good is replaced by a FAILED result that fits, a
 * transient failure is retried until Kafka takes it, and the partition's commits always move on.
 */
class WorkerSendFailureTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final int JOBS = 1000;

  private TestKafka kafka;

  @BeforeEach
  void setUp() {
    kafka = new TestKafka();
  }

  @AfterEach
  void tearDown() throws Exception {
    kafka.close();
  }

  @Test
  void shouldSendFittingFailureAndCommitPastItWhenKafkaRefusesTheResultAsTooLarge() throws Exception {
    kafka.createJobTopics(1, "echo");
    // A results topic made by someone else, with a smaller record limit than this worker's payload limit.
    kafka.createTopic("results", 1, Map.of("max.message.bytes", "2000"));
    kafka.sendJob("echo", "job-big", "\"" + "x".repeat(5000) + "\"");
    kafka.sendJob("echo", "job-next", "\"small\"");
    Worker worker = kafka.worker().build();
    worker.register("echo", payload -> payload);
    RunReport report = worker.runUntilIdle(WAIT);

    assertThat(report).isEqualTo(new RunReport(1, 1, 0));
    Map<String, JsonNode> results = kafka.reader("results").awaitJson(2, WAIT).stream()
        .collect(Collectors.toMap(r -> r.get("job_id").asText(), r -> r));
    JsonNode big = results.get("job-big");
    assertThat(big.get("status").asText()).isEqualTo("FAILED");
    assertThat(big.at("/error/type").asText()).isEqualTo("PayloadTooLarge");
    assertThat(big.at("/error/retryable").asBoolean()).isFalse();
    assertThat(big.at("/error/message").asText()).contains("refused by Kafka");
    assertThat(results.get("job-next").get("status").asText()).isEqualTo("COMPLETED");
    assertThat(kafka.committed("echo")).isEqualTo(2);
  }

  @Test
  void shouldDeadLetterWithoutTheValueAndCommitPastItWhenThePoisonJobIsTooLargeForTheDlt() throws Exception {
    kafka.createJobTopics(1, "echo");
    kafka.createTopic("jobs.DLT", 1, Map.of("max.message.bytes", "2000"));
    kafka.send("echo", "run-poison", "{not json " + "x".repeat(5000));
    kafka.sendJob("echo", "job-next", "\"small\"");
    Worker worker = kafka.worker().build();
    worker.register("echo", payload -> payload);
    RunReport report = worker.runUntilIdle(WAIT);

    assertThat(report).isEqualTo(new RunReport(1, 0, 1));
    var dead = kafka.reader("jobs.DLT").await(1, WAIT).get(0);
    assertThat(dead.value()).isNull();
    assertThat(TestKafka.header(dead, "baton-dlt-reason")).isEqualTo("undecodable");
    assertThat(TestKafka.header(dead, "baton-dlt-value-dropped")).isNotNull(); // as in the other SDKs
    assertThat(TestKafka.header(dead, "kafka_dlt-exception-message"))
        .startsWith("malformed JSON").contains("refused by the DLT topic");
    assertThat(kafka.committed("echo")).isEqualTo(2);
  }

  @Test
  void shouldRetryTheResultUntilKafkaTakesItWhenSendsFailPastTheDeliveryTimeout() throws Exception {
    kafka.createJobTopics(1, "echo");
    Worker worker = kafka.worker()
        // A short delivery timeout, so the producer gives up on its own retries within the test.
        .kafkaProperty("delivery.timeout.ms", 2000)
        .kafkaProperty("request.timeout.ms", 1000)
        .kafkaProperty("max.block.ms", 1000)
        .build();
    AtomicInteger ran = new AtomicInteger();
    worker.register("echo", payload -> "echo " + payload + " " + ran.incrementAndGet());
    try {
      worker.startAsync();
      // The results topic disappears (auto-creation is off): every send fails until it is back.
      kafka.deleteTopic("results");
      kafka.sendJobs("echo", "job-", JOBS, "1");
      // Several delivery timeouts pass with nothing acknowledged and nothing committed, and the worker
      // stops taking jobs once 8 + 2 x 100 wait for Kafka, instead of holding every result in memory.
      await().during(Duration.ofSeconds(6)).atMost(Duration.ofSeconds(10))
          .until(() -> worker.report().completed() == 0 && kafka.committed("echo") == 0
              && ran.get() <= 208 && worker.bookkeeping() <= 100 + 208 + 8);
      kafka.createTopic("results", 1, Map.of());

      await().atMost(WAIT).until(() -> kafka.committed("echo") == JOBS);
      List<JsonNode> results = kafka.reader("results").awaitJson(JOBS, WAIT);
      assertThat(results).extracting(r -> r.get("status").asText()).containsOnly("COMPLETED");
      assertThat(results.stream().map(r -> r.get("job_id").asText()).distinct()).hasSize(JOBS);
      assertThat(worker.report().completed()).isEqualTo(JOBS);
    } finally {
      worker.close();
    }
  }
}
