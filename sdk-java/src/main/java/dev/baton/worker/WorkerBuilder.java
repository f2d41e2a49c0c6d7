package dev.baton.worker;

import dev.baton.worker.internal.Settings;
import io.opentelemetry.api.OpenTelemetry;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * Options of a {@link Worker}. Nothing is mandatory: an option not set here falls back to its
 * {@code BATON_*} environment variable, then to the default. {@link #build()} validates and throws
 * {@link IllegalArgumentException} with the messages shared by all Baton SDKs.
 */
public final class WorkerBuilder {
  private static final Pattern HOST_PORT =
      Pattern.compile("^(\\[[0-9A-Fa-f:.]+\\]|[^\\s:,\\[\\]]+):\\d{1,5}$");
  private static final Pattern TOPIC_PREFIX = Pattern.compile("^[A-Za-z0-9._-]*$");

  private String bootstrapServers;
  private String groupId;
  private Integer concurrency;
  private String topicPrefix;
  private Long maxPayloadBytes;
  private Integer topicPartitions;
  private Duration presenceInterval;
  private Duration drainTimeout;
  private Duration deadlineGrace;
  private Integer maxAbandoned;
  private Integer topicReplicationFactor;
  private Integer topicMinInsyncReplicas;
  private OpenTelemetry openTelemetry;
  private final Map<String, Object> kafkaProperties = new HashMap<>();
  private final Map<String, Object> consumerProperties = new HashMap<>();
  private Function<String, String> env = System::getenv;

  WorkerBuilder() {}

  /** Comma-separated {@code host:port} list; env {@code BATON_KAFKA_BOOTSTRAP_SERVERS}. */
  public WorkerBuilder bootstrapServers(String bootstrapServers) {
    this.bootstrapServers = bootstrapServers;
    return this;
  }

  /** Consumer group shared by every worker of the same actions; env {@code BATON_WORKER_GROUP}. */
  public WorkerBuilder groupId(String groupId) {
    this.groupId = groupId;
    return this;
  }

  /** Most jobs running at once (1-1000, default 8); env {@code BATON_WORKER_CONCURRENCY}. */
  public WorkerBuilder concurrency(int concurrency) {
    this.concurrency = concurrency;
    return this;
  }

  /** Prefix of every topic name (default {@code workflow-}); env {@code BATON_TOPIC_PREFIX}. */
  public WorkerBuilder topicPrefix(String topicPrefix) {
    this.topicPrefix = topicPrefix;
    return this;
  }

  /** Largest encoded output (default 1 MiB); env {@code BATON_MAX_PAYLOAD_BYTES}. */
  public WorkerBuilder maxPayloadBytes(long maxPayloadBytes) {
    this.maxPayloadBytes = maxPayloadBytes;
    return this;
  }

  /** Partitions of the topics this worker creates (default 6); env {@code BATON_TOPIC_PARTITIONS}. */
  public WorkerBuilder topicPartitions(int topicPartitions) {
    this.topicPartitions = topicPartitions;
    return this;
  }

  /**
   * Period of the presence heartbeat on {@code <prefix>workers} (default 5 s); env
   * {@code BATON_WORKER_PRESENCE_INTERVAL} in seconds. Not {@link JobContext#heartbeat()}.
   */
  public WorkerBuilder presenceInterval(Duration presenceInterval) {
    this.presenceInterval = presenceInterval;
    return this;
  }

  /** @deprecated the presence interval's old name: use {@link #presenceInterval(Duration)}. */
  @Deprecated
  public WorkerBuilder heartbeatInterval(Duration heartbeatInterval) {
    Deprecations.warnOnce("heartbeatInterval", "presenceInterval");
    return presenceInterval(heartbeatInterval);
  }

  /**
   * How long {@code close()} or SIGTERM waits for running handlers (default 30 s); env
   * {@code BATON_WORKER_DRAIN_TIMEOUT} in seconds.
   */
  public WorkerBuilder drainTimeout(Duration drainTimeout) {
    this.drainTimeout = drainTimeout;
    return this;
  }

  /**
   * How long past a job's deadline the worker still waits for its handler (default 10 s); then it
   * interrupts the handler, answers {@code Timeout} and moves on. Env {@code BATON_WORKER_DEADLINE_GRACE}.
   */
  public WorkerBuilder deadlineGrace(Duration deadlineGrace) {
    this.deadlineGrace = deadlineGrace;
    return this;
  }

  /**
   * Most timed-out handlers that ignore the interrupt whose slots are given to new jobs (default =
   * concurrency); past it a slot stays taken until its handler returns. Env {@code BATON_WORKER_MAX_ABANDONED}.
   */
  public WorkerBuilder maxAbandoned(int maxAbandoned) {
    this.maxAbandoned = maxAbandoned;
    return this;
  }

  /** Replication factor of the topics this worker creates (default 1); env {@code BATON_TOPIC_REPLICATION_FACTOR}. */
  public WorkerBuilder topicReplicationFactor(int topicReplicationFactor) {
    this.topicReplicationFactor = topicReplicationFactor;
    return this;
  }

  /**
   * {@code min.insync.replicas} of the topics this worker creates (default: the broker's); env
   * {@code BATON_TOPIC_MIN_INSYNC_REPLICAS}.
   */
  public WorkerBuilder topicMinInsyncReplicas(int topicMinInsyncReplicas) {
    this.topicMinInsyncReplicas = topicMinInsyncReplicas;
    return this;
  }

  /**
   * Where the worker's {@code baton.handle <action>} spans go (default {@code GlobalOpenTelemetry.get()},
   * resolved when the worker starts). Without an OpenTelemetry SDK the API is a no-op: the worker still
   * forwards the job's trace context to the handler and the result.
   */
  public WorkerBuilder openTelemetry(OpenTelemetry openTelemetry) {
    this.openTelemetry = Objects.requireNonNull(openTelemetry, "openTelemetry");
    return this;
  }

  /** A Kafka client property for every client of the worker (e.g. security settings). */
  public WorkerBuilder kafkaProperty(String key, Object value) {
    kafkaProperties.put(Objects.requireNonNull(key, "key"), value);
    return this;
  }

  /** A Kafka property for the job consumer only (e.g. {@code session.timeout.ms}). */
  public WorkerBuilder consumerProperty(String key, Object value) {
    consumerProperties.put(Objects.requireNonNull(key, "key"), value);
    return this;
  }

  /** Tests swap the environment to check the fallbacks without touching the real one. */
  WorkerBuilder env(Function<String, String> env) {
    this.env = env;
    return this;
  }

  public Worker build() {
    return new Worker(settings());
  }

  Settings settings() {
    String servers = pick(bootstrapServers, "BATON_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092");
    require(validServers(servers), "bootstrap_servers must be a non-empty host:port list");
    String group = pick(groupId, "BATON_WORKER_GROUP", "workflow-workers");
    require(group != null && !group.isBlank(), "group_id must be a non-empty string");
    String prefix = pick(topicPrefix, "BATON_TOPIC_PREFIX", "workflow-");
    require(TOPIC_PREFIX.matcher(prefix).matches(), "topic_prefix may contain only [A-Za-z0-9._-]");
    long workers = number(concurrency, "BATON_WORKER_CONCURRENCY", 8);
    require(workers >= 1 && workers <= 1000, "concurrency must be an integer between 1 and 1000");
    long payload = number(maxPayloadBytes, "BATON_MAX_PAYLOAD_BYTES", 1_048_576);
    require(payload >= 1 && payload <= Integer.MAX_VALUE, "max_payload_bytes must be a positive integer");
    long partitions = number(topicPartitions, "BATON_TOPIC_PARTITIONS", 6);
    require(partitions >= 1 && partitions <= Integer.MAX_VALUE, "topic_partitions must be a positive integer");
    Duration interval = presenceInterval != null ? presenceInterval : presenceFromEnv();
    require(interval != null && interval.toMillis() > 0, "presence_interval must be a positive number of seconds");
    Duration drain = drainTimeout != null ? drainTimeout : seconds("BATON_WORKER_DRAIN_TIMEOUT", 30);
    require(drain != null && !drain.isNegative(), "drain_timeout must be a non-negative number of seconds");
    Duration grace = deadlineGrace != null ? deadlineGrace : seconds("BATON_WORKER_DEADLINE_GRACE", 10);
    require(grace != null && !grace.isNegative(), "deadline_grace must be a non-negative number of seconds");
    long abandoned = number(maxAbandoned, "BATON_WORKER_MAX_ABANDONED", workers);
    require(abandoned >= 0 && abandoned <= Integer.MAX_VALUE, "max_abandoned must be a non-negative integer");
    long replication = number(topicReplicationFactor, "BATON_TOPIC_REPLICATION_FACTOR", 1);
    require(replication >= 1 && replication <= Short.MAX_VALUE, "topic_replication_factor must be a positive integer");
    // 0 = not set (the broker's default); an explicit 0 is as invalid as a negative number.
    long minIsr = topicMinInsyncReplicas != null && topicMinInsyncReplicas == 0 ? -1
        : number(topicMinInsyncReplicas, "BATON_TOPIC_MIN_INSYNC_REPLICAS", 0);
    require(minIsr >= 0 && minIsr <= Short.MAX_VALUE, "topic_min_insync_replicas must be a positive integer");
    return new Settings(servers.trim(), group, (int) workers, prefix, (int) payload, (int) partitions,
        interval, drain, grace, (int) abandoned, (int) replication, minIsr == 0 ? null : (int) minIsr,
        kafkaProperties, consumerProperties, openTelemetry);
  }

  private String pick(String explicit, String envName, String fallback) {
    if (explicit != null) {
      return explicit;
    }
    String fromEnv = env.apply(envName);
    return fromEnv != null ? fromEnv : fallback;
  }

  /** Returns -1 for an unparsable env value so the range check reports it with the contract's message. */
  private long number(Number explicit, String envName, long fallback) {
    if (explicit != null) {
      return explicit.longValue();
    }
    String fromEnv = env.apply(envName);
    if (fromEnv == null) {
      return fallback;
    }
    try {
      return Long.parseLong(fromEnv.trim());
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  /** The new env name wins; the old one still works, with a warning once. */
  private Duration presenceFromEnv() {
    if (env.apply("BATON_WORKER_PRESENCE_INTERVAL") == null && env.apply("BATON_WORKER_HEARTBEAT_INTERVAL") != null) {
      Deprecations.warnOnce("BATON_WORKER_HEARTBEAT_INTERVAL", "BATON_WORKER_PRESENCE_INTERVAL");
      return seconds("BATON_WORKER_HEARTBEAT_INTERVAL", 5);
    }
    return seconds("BATON_WORKER_PRESENCE_INTERVAL", 5);
  }

  /** An env value in (fractional) seconds; null when unparsable, so the check reports the contract's message. */
  private Duration seconds(String envName, long fallback) {
    String fromEnv = env.apply(envName);
    if (fromEnv == null) {
      return Duration.ofSeconds(fallback);
    }
    try {
      double value = Double.parseDouble(fromEnv.trim());
      return Double.isFinite(value) ? Duration.ofMillis(Math.round(value * 1000)) : null;
    } catch (NumberFormatException e) {
      return null;
    }
  }

  private static boolean validServers(String servers) {
    if (servers == null || servers.isBlank()) {
      return false;
    }
    for (String server : servers.split(",", -1)) {
      if (!HOST_PORT.matcher(server.trim()).matches()) {
        return false;
      }
    }
    return true;
  }

  private static void require(boolean ok, String message) {
    if (!ok) {
      throw new IllegalArgumentException(message);
    }
  }
}
