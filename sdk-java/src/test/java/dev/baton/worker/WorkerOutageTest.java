package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Test;

/**
 * A Kafka outage longer than the producer's delivery timeout while jobs finish: once Kafka is back, their
 * results are sent and no partition's commits stay frozen. Runs on a private broker (never the shared one).
 */
class WorkerOutageTest {
  private static final Duration WAIT = Duration.ofSeconds(90);
  private static final int DELIVERY_TIMEOUT_MS = 3000;

  private final String prefix = "t-" + UUID.randomUUID() + "-";
  private final String group = prefix + "group";

  @Test
  void shouldCommitPastEveryFinishedJobWhenKafkaReturnsAfterAnOutageLongerThanTheDeliveryTimeout() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    CountDownLatch started = new CountDownLatch(4);
    try (PrivateKafka kafka = PrivateKafka.start();
        Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrap));
        KafkaProducer<byte[], byte[]> jobs = producer(kafka.bootstrap);
        Worker worker = Worker.builder().bootstrapServers(kafka.bootstrap).groupId(group).topicPrefix(prefix)
            .topicPartitions(1)
            .kafkaProperty("delivery.timeout.ms", DELIVERY_TIMEOUT_MS)
            .kafkaProperty("request.timeout.ms", 1000)
            .kafkaProperty("max.block.ms", 1000)
            .build()) {
      worker.register("work", payload -> {
        started.countDown();
        if (!"job-0".equals(payload)) {
          release.await(); // finishes only once Kafka is gone
        }
        return "done " + payload;
      });
      worker.startAsync();
      // job-0 first, so the producer knows the results topic: later sends queue up instead of waiting
      // for metadata, and then expire after the delivery timeout, the case the worker must retry.
      send(jobs, "job-0");
      await().atMost(WAIT).until(() -> worker.report().completed() == 1);
      for (int i = 1; i < 4; i++) {
        send(jobs, "job-" + i);
      }
      assertThat(started.await(60, TimeUnit.SECONDS)).isTrue();

      kafka.stopBroker();
      release.countDown();
      // Twice the delivery timeout: the producer has given up on its own retries, the worker has not.
      await().during(Duration.ofMillis(2L * DELIVERY_TIMEOUT_MS)).atMost(Duration.ofSeconds(20))
          .until(() -> worker.report().completed() == 1);
      kafka.startBroker();

      await().atMost(WAIT).ignoreExceptions().until(() -> committed(admin) == 4);
      for (int i = 4; i < 6; i++) {
        send(jobs, "job-" + i);
      }
      await().atMost(WAIT).ignoreExceptions().until(() -> committed(admin) == 6);
      Set<String> completed = results(kafka.bootstrap, admin).stream()
          .filter(r -> r.get("status").asText().equals("COMPLETED")).map(r -> r.get("job_id").asText())
          .collect(Collectors.toSet());
      assertThat(completed).containsExactlyInAnyOrder("job-0", "job-1", "job-2", "job-3", "job-4", "job-5");
    }
  }

  private void send(KafkaProducer<byte[], byte[]> producer, String jobId) throws Exception {
    String runId = "run-" + jobId;
    producer.send(new ProducerRecord<>(prefix + "jobs.work", runId.getBytes(StandardCharsets.UTF_8),
        TestKafka.job("work", jobId, runId, "\"" + jobId + "\"").getBytes(StandardCharsets.UTF_8)))
        .get(30, TimeUnit.SECONDS);
  }

  private long committed(Admin admin) throws Exception {
    Map<TopicPartition, OffsetAndMetadata> offsets =
        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(5, TimeUnit.SECONDS);
    OffsetAndMetadata offset = offsets.get(new TopicPartition(prefix + "jobs.work", 0));
    return offset == null ? 0 : offset.offset();
  }

  private List<JsonNode> results(String bootstrap, Admin admin) {
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(Map.of(
        ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap), new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      TopicPartition results = new TopicPartition(prefix + "results", 0);
      consumer.assign(List.of(results));
      consumer.seekToBeginning(List.of(results));
      long end = consumer.endOffsets(List.of(results)).get(results);
      List<JsonNode> seen = new java.util.ArrayList<>();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (consumer.position(results) < end && System.nanoTime() < deadline) {
        for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
          seen.add(TestKafka.parse(record.value()));
        }
      }
      return seen;
    }
  }

  private static KafkaProducer<byte[], byte[]> producer(String bootstrap) {
    return new KafkaProducer<>(Map.of(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap, ProducerConfig.ACKS_CONFIG,
        "all", ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000), new ByteArraySerializer(), new ByteArraySerializer());
  }
}
