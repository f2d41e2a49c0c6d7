package dev.baton.worker.internal;

import dev.baton.worker.ContextJobHandler;
import dev.baton.worker.RunReport;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The running parts of one worker: producer, consumer thread, handler pool, presence. */
public final class WorkerRuntime {
  private static final Logger LOG = LoggerFactory.getLogger(WorkerRuntime.class);

  private final Settings settings;
  private final WorkerIdentity identity;
  private final Map<String, ContextJobHandler> handlers;
  private final Counters counters = new Counters();
  private KafkaProducer<byte[], byte[]> producer;
  private ExecutorService pool;
  private ConsumerLoop loop;
  private Presence presence;
  private boolean stopped;

  public WorkerRuntime(Settings settings, WorkerIdentity identity, Map<String, ContextJobHandler> handlers) {
    this.settings = settings;
    this.identity = identity;
    this.handlers = Map.copyOf(handlers);
  }

  /** Creates missing topics, then starts consuming; throws if Kafka cannot be reached. */
  public synchronized void start(boolean untilIdle) {
    List<String> actions = handlers.keySet().stream().sorted().toList();
    List<String> jobTopics = actions.stream().map(settings::jobTopic).toList();
    List<String> all = new ArrayList<>(jobTopics);
    all.addAll(List.of(settings.resultsTopic(), settings.deadLetterTopic(), settings.workersTopic()));
    KafkaClients.ensureTopics(settings, all, Duration.ofSeconds(30));

    producer = KafkaClients.producer(settings, identity.id());
    pool = handlerPool(settings.concurrency());
    LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();
    Envelopes envelopes = new Envelopes(identity, settings.maxPayloadBytes());
    JobRunner runner = new JobRunner(settings, envelopes, producer, handlers, counters, events::add);
    loop = new ConsumerLoop(KafkaClients.consumer(settings, identity.id()), jobTopics, settings, pool,
        runner, counters, events, untilIdle);
    presence = new Presence(settings, identity, envelopes, producer, actions, counters);
    presence.start();
    Thread consumerThread = new Thread(loop, "baton-consumer-" + identity.id());
    consumerThread.start();
    LOG.info("worker {} started: actions {}, group {}, concurrency {}", identity.id(), actions,
        settings.groupId(), settings.concurrency());
  }

  /** True once the consumer thread ended (burst mode reached idle, or a stop finished draining). */
  public boolean awaitFinished(Duration timeout) throws InterruptedException {
    return loop.awaitFinished(timeout);
  }

  /** Graceful: stop fetching, drain running handlers (up to the drain timeout), commit, say STOPPED. */
  public synchronized void stop() {
    if (stopped || loop == null) {
      return;
    }
    stopped = true;
    loop.requestStop();
    try {
      if (!loop.awaitFinished(settings.drainTimeout().plusSeconds(20))) {
        LOG.warn("consumer thread did not finish draining in time");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    presence.stop();
    pool.shutdownNow(); // handlers past the drain timeout: their jobs stay uncommitted
    producer.close(Duration.ofSeconds(10));
    LOG.info("worker {} stopped: {}", identity.id(), counters.report());
  }

  public RunReport report() {
    return counters.report();
  }

  public int running() {
    return counters.running();
  }

  private static ExecutorService handlerPool(int concurrency) {
    AtomicInteger seq = new AtomicInteger();
    // Daemon threads: a handler stuck past the drain timeout must not keep the JVM alive.
    return new ThreadPoolExecutor(concurrency, concurrency, 60, TimeUnit.SECONDS, new LinkedBlockingQueue<>(),
        r -> {
          Thread thread = new Thread(r, "baton-handler-" + seq.incrementAndGet());
          thread.setDaemon(true);
          return thread;
        });
  }
}
