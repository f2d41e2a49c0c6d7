package dev.baton.worker.internal;

import java.time.Duration;
import java.util.Map;

/**
 * Validated worker configuration. Built only by {@code WorkerBuilder}, the one place that reads the
 * {@code BATON_*} environment. {@code topicMinInsyncReplicas} is null for the broker's default.
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
    Map<String, Object> consumerProperties) {

  public Settings {
    kafkaProperties = Map.copyOf(kafkaProperties);
    consumerProperties = Map.copyOf(consumerProperties);
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
