package dev.baton.worker.internal;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.RoundRobinAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/** Kafka client settings the delivery rules depend on, and topic creation. */
final class KafkaClients {
  /** Room for the envelope around an output of exactly {@code maxPayloadBytes}. */
  private static final int ENVELOPE_ROOM = 64 * 1024;
  private static final long STEP_NANOS = TimeUnit.MILLISECONDS.toNanos(100);

  private KafkaClients() {}

  static KafkaProducer<byte[], byte[]> producer(Settings settings, String clientId) {
    Map<String, Object> props = common(settings, clientId);
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    // 0, not Kafka 4's default of 5: linger adds its whole length to every hop when idle, and under load
    // results batch behind the requests in flight anyway.
    props.put(ProducerConfig.LINGER_MS_CONFIG, 0);
    props.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, settings.maxPayloadBytes() + ENVELOPE_ROOM);
    props.putAll(settings.kafkaProperties());
    return new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer());
  }

  static KafkaConsumer<byte[], byte[]> consumer(Settings settings, String clientId) {
    Map<String, Object> props = common(settings, clientId);
    props.put(ConsumerConfig.GROUP_ID_CONFIG, settings.groupId());
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    // Workers of every SDK share one group (DESIGN §2), so all members must offer a common protocol:
    // the classic group protocol with the "roundrobin" assignor is the one aiokafka and
    // @platformatic/kafka implement (cooperative rebalancing and the KIP-848 "consumer" protocol are not
    // available there; a Java-only strategy makes the join fail with InconsistentGroupProtocolException).
    // RoundRobinAssignor also honours members with different subscriptions: each partition goes to a
    // member subscribed to its topic. Rebalances are eager: every partition is revoked, then reassigned.
    props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
    props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, RoundRobinAssignor.class.getName());
    props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, settings.maxPollRecords());
    // A dead worker's partitions move after the session timeout: 10 s like the Python and Node SDKs,
    // not kafka-clients' 45 s default, so its uncommitted jobs reach another worker quickly.
    props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10_000);
    props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1_000);
    props.putAll(settings.kafkaProperties());
    props.putAll(settings.consumerProperties());
    return new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  /**
   * Creates the missing topics ("already exists" is success) and waits until metadata shows them.
   * Returns false, having created nothing more, as soon as {@code stopping} holds: a SIGTERM while Kafka
   * is unreachable must not wait for the start-up timeout.
   */
  static boolean ensureTopics(Settings settings, Collection<String> topics, Duration timeout,
      BooleanSupplier stopping) {
    Map<String, Object> props = common(settings, "baton-admin");
    props.putAll(settings.kafkaProperties());
    long deadline = System.nanoTime() + timeout.toNanos();
    Admin admin = Admin.create(props);
    try {
      List<NewTopic> wanted = new ArrayList<>();
      for (String topic : topics) {
        wanted.add(newTopic(settings, topic));
      }
      for (var created : admin.createTopics(wanted).values().entrySet()) {
        if (!await(created.getKey(), created::getValue, deadline, stopping)) {
          return false;
        }
      }
      // A subscription made before every broker knows a new topic would miss it until the next metadata
      // refresh; burst mode could then report idle too early.
      return await("metadata", () -> admin.describeTopics(topics).allTopicNames(), deadline, stopping);
    } finally {
      admin.close(Duration.ofSeconds(stopping.getAsBoolean() ? 0 : 5));
    }
  }

  private static NewTopic newTopic(Settings settings, String topic) {
    Map<String, String> configs = new HashMap<>();
    configs.put("max.message.bytes", Integer.toString(settings.maxPayloadBytes() + ENVELOPE_ROOM));
    if (settings.topicMinInsyncReplicas() != null) {
      configs.put("min.insync.replicas", Integer.toString(settings.topicMinInsyncReplicas()));
    }
    return new NewTopic(topic, Optional.of(settings.topicPartitions()),
        Optional.of((short) settings.topicReplicationFactor())).configs(configs);
  }

  /**
   * Waits in short steps so a stop request is seen within one step. A topic not known yet (metadata
   * still propagating) asks {@code request} again.
   */
  private static boolean await(String what, Supplier<KafkaFuture<?>> request, long deadline,
      BooleanSupplier stopping) {
    KafkaFuture<?> future = request.get();
    while (true) {
      if (stopping.getAsBoolean()) {
        return false;
      }
      try {
        future.get(Math.min(STEP_NANOS, remaining(deadline)), TimeUnit.NANOSECONDS);
        return true;
      } catch (ExecutionException e) {
        if (e.getCause() instanceof TopicExistsException) {
          return true;
        }
        if (e.getCause() instanceof UnknownTopicOrPartitionException && remaining(deadline) > 0) {
          LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(50));
          future = request.get();
          continue;
        }
        throw new IllegalStateException("cannot create Kafka topics (" + what + "): " + e.getCause(), e);
      } catch (TimeoutException e) {
        if (remaining(deadline) <= 0) {
          throw new IllegalStateException("timed out creating Kafka topics (" + what + ")", e);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while creating Kafka topics", e);
      }
    }
  }

  private static long remaining(long deadline) {
    return Math.max(0, deadline - System.nanoTime());
  }

  private static Map<String, Object> common(Settings settings, String clientId) {
    Map<String, Object> props = new HashMap<>();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, settings.bootstrapServers());
    props.put(AdminClientConfig.CLIENT_ID_CONFIG, clientId);
    return props;
  }
}
