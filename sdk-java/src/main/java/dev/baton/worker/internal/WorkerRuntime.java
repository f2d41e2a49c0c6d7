package dev.baton.worker.internal;

import dev.baton.worker.ContextJobHandler;
import dev.baton.worker.RunReport;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The running parts of one worker: producer, consumer thread, handler pool, deadline watch, presence. */
public final class WorkerRuntime {
  private static final Logger LOG = LoggerFactory.getLogger(WorkerRuntime.class);
  private static final Duration STARTUP_TIMEOUT = Duration.ofSeconds(30);

  private final Settings settings;
  private final WorkerIdentity identity;
  private final Map<String, ContextJobHandler> handlers;
  private final Counters counters = new Counters();
  private volatile boolean stopping;
  private volatile ConsumerLoop loop;
  private KafkaProducer<byte[], byte[]> producer;
  private ResultSender sender;
  private ExecutorService pool;
  private ScheduledThreadPoolExecutor deadlines;
  private Presence presence;
  private boolean stopped;

  public WorkerRuntime(Settings settings, WorkerIdentity identity, Map<String, ContextJobHandler> handlers) {
    this.settings = settings;
    this.identity = identity;
    this.handlers = Map.copyOf(handlers);
  }

  /**
   * Creates missing topics, then starts consuming; throws if Kafka cannot be reached in time. A
   * {@link #stop()} meanwhile (SIGTERM) ends the wait at once, and nothing is started.
   */
  public void start(boolean untilIdle) {
    List<String> actions = handlers.keySet().stream().sorted().toList();
    List<String> jobTopics = actions.stream().map(settings::jobTopic).toList();
    List<String> all = new ArrayList<>(jobTopics);
    all.addAll(List.of(settings.resultsTopic(), settings.deadLetterTopic(), settings.workersTopic()));
    if (!KafkaClients.ensureTopics(settings, all, STARTUP_TIMEOUT, () -> stopping)) {
      LOG.info("worker {} stopped while starting", identity.id());
      return;
    }
    synchronized (this) {
      if (stopping) {
        return;
      }
      launch(actions, jobTopics, untilIdle);
    }
    LOG.info("worker {} started: actions {}, group {}, concurrency {}", identity.id(), actions,
        settings.groupId(), settings.concurrency());
  }

  private void launch(List<String> actions, List<String> jobTopics, boolean untilIdle) {
    producer = KafkaClients.producer(settings, identity.id());
    LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();
    sender = new ResultSender(producer, events::add);
    pool = handlerPool(settings.concurrency());
    deadlines = deadlineWatch();
    Envelopes envelopes = new Envelopes(identity, settings.maxPayloadBytes());
    Tracing tracing = new Tracing(settings.telemetry(), identity.id());
    JobRunner runner = new JobRunner(settings, envelopes, producer, sender, deadlines, handlers, counters,
        events::add, tracing);
    ConsumerLoop consumerLoop = new ConsumerLoop(KafkaClients.consumer(settings, identity.id()), jobTopics,
        settings, pool, runner, counters, events, untilIdle);
    presence = new Presence(settings, identity, envelopes, producer, actions, counters);
    presence.start();
    loop = consumerLoop;
    new Thread(consumerLoop, "baton-consumer-" + identity.id()).start();
  }

  /** True once the consumer thread ended (burst mode reached idle, a stop finished draining), or never ran. */
  public boolean awaitFinished(Duration timeout) throws InterruptedException {
    ConsumerLoop current = loop;
    return current == null || current.awaitFinished(timeout);
  }

  /** Graceful: stop fetching, drain running handlers (up to the drain timeout), commit, say STOPPED. */
  public void stop() {
    stopping = true;
    synchronized (this) {
      if (stopped || loop == null) {
        stopped = true;
        return;
      }
      stopped = true;
    }
    loop.requestStop();
    try {
      if (!loop.awaitFinished(settings.drainTimeout().plusSeconds(20))) {
        LOG.warn("consumer thread did not finish draining in time");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    presence.stop();
    sender.close(); // results still unsent stay uncommitted: redelivered after the restart
    deadlines.shutdownNow();
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

  /** Per-job entries held now: offsets tracked and deadline watches; for tests of bounded memory. */
  public int bookkeeping() {
    ConsumerLoop current = loop;
    ScheduledThreadPoolExecutor watches = deadlines;
    return (current == null ? 0 : current.tracked()) + (watches == null ? 0 : watches.getQueue().size());
  }

  /**
   * At most {@code concurrency} handlers hold a slot, but a thread may outlive its slot: a handler that
   * ignores the interrupt at its deadline keeps its thread while its slot goes to the next job, so the
   * pool grows instead of queueing (bounded by concurrency + max abandoned).
   */
  private static ExecutorService handlerPool(int concurrency) {
    AtomicInteger seq = new AtomicInteger();
    // Daemon threads: a handler stuck past the drain timeout must not keep the JVM alive.
    return new ThreadPoolExecutor(concurrency, Integer.MAX_VALUE, 60, TimeUnit.SECONDS, new SynchronousQueue<>(),
        r -> daemon(r, "baton-handler-" + seq.incrementAndGet()));
  }

  private static ScheduledThreadPoolExecutor deadlineWatch() {
    ScheduledThreadPoolExecutor watch = new ScheduledThreadPoolExecutor(1, r -> daemon(r, "baton-deadlines"));
    watch.setRemoveOnCancelPolicy(true); // a job that finishes in time leaves nothing behind
    return watch;
  }

  private static Thread daemon(Runnable r, String name) {
    Thread thread = new Thread(r, name);
    thread.setDaemon(true);
    return thread;
  }
}
