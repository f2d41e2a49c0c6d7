package dev.baton.worker;


import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
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
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;

/**
 * One test's view of the shared Kafka: a unique topic prefix and group, a producer for jobs and readers
 * for any topic. Close it after the test. Outside CI a missing broker skips; in CI it fails.
 */
final class TestKafka implements AutoCloseable {
  static final String BOOTSTRAP =
      System.getenv().getOrDefault("BATON_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092");
  static final ObjectMapper JSON = new ObjectMapper();

  final String prefix = "t-" + UUID.randomUUID() + "-";
  final String group = prefix + "group";
  final Admin admin;
  private final KafkaProducer<byte[], byte[]> producer;
  private final List<AutoCloseable> closeables = new ArrayList<>();

  TestKafka() {
    admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP,
        AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 5000, AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000));
    try {
      admin.describeCluster().nodes().get(5, TimeUnit.SECONDS);
    } catch (Exception e) {
      admin.close(Duration.ZERO);
      String why = "Kafka is not reachable at " + BOOTSTRAP + ": " + e;
      if ("true".equalsIgnoreCase(System.getenv("CI"))) {
        Assertions.fail(why);
      }
      Assumptions.abort(why);
    }
    producer = new KafkaProducer<>(Map.of(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP,
        ProducerConfig.ACKS_CONFIG, "all", ProducerConfig.MAX_BLOCK_MS_CONFIG, 10_000),
        new ByteArraySerializer(), new ByteArraySerializer());
  }

  WorkerBuilder worker() {
    return Worker.builder().bootstrapServers(BOOTSTRAP).groupId(group).topicPrefix(prefix).topicPartitions(3);
  }

  static String job(String action, String jobId, String runId, String inputJson) {
    Instant now = Instant.now();
    return "{\"v\":1,\"job_id\":\"" + jobId + "\",\"run_id\":\"" + runId + "\",\"workflow_id\":\"wf\","
        + "\"workflow_version\":1,\"step\":\"s-" + action + "\",\"action\":\"" + action + "\",\"attempt\":1,"
        + "\"max_attempts\":4,\"input\":" + inputJson + ",\"deadline\":\"" + now.plusSeconds(300) + "\","
        + "\"timeout_ms\":300000,\"created_at\":\"" + now + "\"}";
  }

  /** Creates the job topics of the actions, so jobs can be published before any worker exists. */
  void createJobTopics(int partitions, String... actions) throws Exception {
    List<NewTopic> topics = new ArrayList<>();
    for (String action : actions) {
      topics.add(new NewTopic(prefix + "jobs." + action, partitions, (short) 1));
    }
    admin.createTopics(topics).all().get(10, TimeUnit.SECONDS);
  }

  /** Creates {@code prefix + suffix} with the given topic configs (e.g. a small {@code max.message.bytes}). */
  void createTopic(String suffix, int partitions, Map<String, String> configs) throws Exception {
    admin.createTopics(List.of(new NewTopic(prefix + suffix, partitions, (short) 1).configs(configs)))
        .all().get(10, TimeUnit.SECONDS);
  }

  /** Deletes {@code prefix + suffix} and waits until the broker no longer lists it. */
  void deleteTopic(String suffix) throws Exception {
    admin.deleteTopics(List.of(prefix + suffix)).all().get(10, TimeUnit.SECONDS);
    Awaitility.await().atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(100))
        .until(() -> !admin.listTopics().names().get(5, TimeUnit.SECONDS).contains(prefix + suffix));
  }

  /** A job whose deadline is {@code deadline} (the timeout_ms field says how far heartbeats move it). */
  static String jobWithDeadline(String action, String jobId, String inputJson, Instant deadline) {
    String runId = "run-" + jobId;
    return job(action, jobId, runId, inputJson).replaceFirst("\"deadline\":\"[^\"]+\"",
        "\"deadline\":\"" + deadline + "\"");
  }

  /** Sends a job (or any bytes) to the action's topic, keyed by run id as the orchestrator does. */
  void send(String action, String runId, String value, String... headers) {
    ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(prefix + "jobs." + action,
        runId.getBytes(StandardCharsets.UTF_8), value.getBytes(StandardCharsets.UTF_8));
    for (int i = 0; i + 1 < headers.length; i += 2) {
      record.headers().add(headers[i], headers[i + 1].getBytes(StandardCharsets.UTF_8));
    }
    try {
      producer.send(record).get(10, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new IllegalStateException("send failed", e);
    }
  }

  /** Sends a job with raw header bytes (any bytes: not UTF-8, NUL, ...), in the order given. */
  void sendWithHeaders(String action, String runId, String value, List<Map.Entry<String, byte[]>> headers) {
    ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(prefix + "jobs." + action,
        runId.getBytes(StandardCharsets.UTF_8), value.getBytes(StandardCharsets.UTF_8));
    headers.forEach(h -> record.headers().add(h.getKey(), h.getValue()));
    try {
      producer.send(record).get(10, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new IllegalStateException("send failed", e);
    }
  }

  void sendJob(String action, String jobId, String inputJson) {
    String runId = "run-" + jobId;
    send(action, runId, job(action, jobId, runId, inputJson));
  }

  /**
   * Sends {@code count} jobs {@code <jobIdPrefix><i>}, 500 at a time without waiting for each. The first
   * goes alone: a burst into a topic whose leaders are still settling made the idempotent producer loop
   * on OUT_OF_ORDER_SEQUENCE_NUMBER.
   */
  void sendJobs(String action, String jobIdPrefix, int count, String inputJson) {
    List<java.util.concurrent.Future<?>> sent = new ArrayList<>();
    try {
      for (int i = 0; i < count; i++) {
        String jobId = jobIdPrefix + i;
        String runId = "run-" + jobId;
        sent.add(producer.send(new ProducerRecord<>(prefix + "jobs." + action, runId.getBytes(StandardCharsets.UTF_8),
            job(action, jobId, runId, inputJson).getBytes(StandardCharsets.UTF_8))));
        if (i == 0 || sent.size() == 500 || i == count - 1) {
          for (java.util.concurrent.Future<?> future : sent) {
            future.get(30, TimeUnit.SECONDS);
          }
          sent.clear();
        }
      }
    } catch (Exception e) {
      throw new IllegalStateException("send failed", e);
    }
  }

  /** A reader of every partition of {@code prefix + suffix} from the beginning, with no group. */
  Reader reader(String suffix) {
    Reader reader = new Reader(prefix + suffix);
    closeables.add(reader);
    return reader;
  }

  /** Committed offsets of the test's group, summed over the action's partitions. */
  long committed(String action) throws Exception {
    Map<TopicPartition, OffsetAndMetadata> offsets =
        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(5, TimeUnit.SECONDS);
    return offsets.entrySet().stream()
        .filter(e -> e.getKey().topic().equals(prefix + "jobs." + action) && e.getValue() != null)
        .mapToLong(e -> e.getValue().offset()).sum();
  }

  @Override
  public void close() throws Exception {
    for (AutoCloseable closeable : closeables) {
      closeable.close();
    }
    producer.close(Duration.ofSeconds(5));
    List<String> topics = admin.listTopics().names().get(5, TimeUnit.SECONDS).stream()
        .filter(t -> t.startsWith(prefix)).collect(Collectors.toList());
    if (!topics.isEmpty()) {
      admin.deleteTopics(topics).all().get(10, TimeUnit.SECONDS);
    }
    admin.close(Duration.ofSeconds(5));
  }

  final class Reader implements AutoCloseable {
    private final String topic;
    private final KafkaConsumer<byte[], byte[]> consumer;
    private final List<ConsumerRecord<byte[], byte[]>> seen = new ArrayList<>();

    Reader(String topic) {
      this.topic = topic;
      consumer = new KafkaConsumer<>(Map.of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP,
          ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest"), new ByteArrayDeserializer(),
          new ByteArrayDeserializer());
    }

    /** Waits until at least {@code count} records arrived and returns all seen so far. */
    List<ConsumerRecord<byte[], byte[]>> await(int count, Duration timeout) {
      Awaitility.await().atMost(timeout).pollInterval(Duration.ofMillis(50)).ignoreExceptions().until(() -> {
        poll();
        return seen.size() >= count;
      });
      return List.copyOf(seen);
    }

    List<JsonNode> awaitJson(int count, Duration timeout) {
      return await(count, timeout).stream().map(r -> parse(r.value())).collect(Collectors.toList());
    }

    private void poll() throws Exception {
      if (consumer.assignment().isEmpty()) {
        Map<String, TopicDescription> topics = admin.describeTopics(List.of(topic)).allTopicNames().get();
        consumer.assign(topics.get(topic).partitions().stream()
            .map(p -> new TopicPartition(topic, p.partition())).collect(Collectors.toList()));
      }
      consumer.poll(Duration.ofMillis(100)).forEach(seen::add);
    }

    @Override
    public void close() {
      consumer.close(Duration.ofSeconds(2));
    }
  }

  static JsonNode parse(byte[] bytes) {
    try {
      return JSON.readTree(bytes);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  static String header(ConsumerRecord<byte[], byte[]> record, String name) {
    var header = record.headers().lastHeader(name);
    return header == null ? null : new String(header.value(), StandardCharsets.UTF_8);
  }
}
