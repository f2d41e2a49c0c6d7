package dev.baton.worker.internal;

import io.opentelemetry.api.GlobalOpenTelemetry;
import io.opentelemetry.api.OpenTelemetry;
import java.time.Duration;
import java.util.Map;

/**
 * Validated worker configuration. Built only by {@code WorkerBuilder}, the one place that reads the
 * {@code BATON_*} environment. {@code topicMinInsyncReplicas} is null for the broker's default; {@code openTelemetry} is null for
 * the global instance, looked up only when the worker starts so an application may install its SDK
 * after building the worker.
 */
public record Settings(
    String bootstrapServers,
    String groupId,
    int concurrency,
    String topicPrefix,
    int maxPayloadBytes,
    int topicPartitions,
    Duration presenceInterval,
    Duration drainTimeout,
    Duration deadlineGrace,
    int maxAbandoned,
    int topicReplicationFactor,
    Integer topicMinInsyncReplicas,
    Map<String, Object> kafkaProperties,
    Map<String, Object> consumerProperties,
    OpenTelemetry openTelemetry) {

  public Settings {
    kafkaProperties = Map.copyOf(kafkaProperties);
    consumerProperties = Map.copyOf(consumerProperties);
  }

  /** The instance whose tracer makes the handle spans. */
  public OpenTelemetry telemetry() {
    return openTelemetry != null ? openTelemetry : GlobalOpenTelemetry.get();
  }

  /** Records one poll may bring: enough to keep every slot fed between polls. */
  public int maxPollRecords() {
    return Math.max(100, Math.min(1000, concurrency * 4));
  }

  /**
   * Most jobs dispatched whose result Kafka has not acknowledged yet. Slots are given back before the
   * result is sent, so without this bound a worker whose sends keep failing would go on taking jobs and
   * holding their results in memory.
   */
  public int maxUnacknowledged() {
    return concurrency + 2 * maxPollRecords();
  }

  public String jobTopic(String action) {
    return topicPrefix + "jobs." + action;
  }

  public String resultsTopic() {
    return topicPrefix + "results";
  }

  public String deadLetterTopic() {
    return topicPrefix + "jobs.DLT";
  }

  public String workersTopic() {
    return topicPrefix + "workers";
  }
}
