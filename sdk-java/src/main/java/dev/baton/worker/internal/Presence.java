package dev.baton.worker.internal;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Periodic RUNNING heartbeats on {@code <prefix>workers}, and a last STOPPED one on shutdown. */
final class Presence {
  private static final Logger LOG = LoggerFactory.getLogger(Presence.class);

  private final Settings settings;
  private final WorkerIdentity identity;
  private final Envelopes envelopes;
  private final Producer<byte[], byte[]> producer;
  private final List<String> actions;
  private final Counters counters;
  private final Instant startedAt = Instant.now();
  private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
    Thread thread = new Thread(r, "baton-presence");
    thread.setDaemon(true);
    return thread;
  });

  Presence(Settings settings, WorkerIdentity identity, Envelopes envelopes, Producer<byte[], byte[]> producer,
      List<String> actions, Counters counters) {
    this.settings = settings;
    this.identity = identity;
    this.envelopes = envelopes;
    this.producer = producer;
    this.actions = List.copyOf(actions);
    this.counters = counters;
  }

  void start() {
    long every = settings.presenceInterval().toMillis();
    timer.scheduleAtFixedRate(() -> send("RUNNING"), 0, every, TimeUnit.MILLISECONDS);
  }

  /** Waits briefly for the STOPPED beat so the engine learns of the exit now, not after a missed beat. */
  void stop() {
    timer.shutdownNow();
    try {
      send("STOPPED").get(5, TimeUnit.SECONDS);
    } catch (Exception e) {
      LOG.warn("STOPPED heartbeat not acknowledged: {}", e.toString());
    }
  }

  private Future<?> send(String status) {
    byte[] beat = envelopes.presence(status, settings.groupId(), actions, settings.concurrency(),
        counters.running(), counters.stuck(), startedAt);
    try {
      return producer.send(new ProducerRecord<>(settings.workersTopic(),
          identity.id().getBytes(StandardCharsets.UTF_8), beat), (meta, e) -> {
            if (e != null) {
              LOG.warn("presence heartbeat not sent: {}", e.toString());
            }
          });
    } catch (RuntimeException e) {
      LOG.warn("presence heartbeat not sent: {}", e.toString());
      return java.util.concurrent.CompletableFuture.failedFuture(e);
    }
  }
}
