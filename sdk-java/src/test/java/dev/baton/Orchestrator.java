package dev.baton;

import static org.awaitility.Awaitility.await;

import dev.baton.worker.Worker;
import dev.baton.worker.WorkerBuilder;
import java.io.IOException;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;

/**
 * A real {@code baton server} process (the repository's {@code .venv/bin/baton}) on a free port, with its own
 * PostgreSQL schema, topic prefix, Redis prefix and engine group. Closing it stops the process (by its pid),
 * drops the schema and deletes the topics. Outside CI a missing stack or binary skips; in CI it fails.
 */
final class Orchestrator implements AutoCloseable {
  static final String BOOTSTRAP =
      System.getenv().getOrDefault("BATON_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092");
  // sdk-java/target/test-classes: the repository root is two levels above sdk-java, wherever it is checked out.
  static final Path TEST_CLASSES = testClasses();
  static final Path BIN = TEST_CLASSES.getParent().getParent().getParent().resolve(".venv").resolve("bin");

  final String unique = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
  final String prefix = "t-" + unique + "-";
  final String url;
  private final Map<String, String> env;
  private final Process process;
  private final Path log;

  private Orchestrator(Map<String, String> extraEnv) throws IOException {
    int port = freePort();
    url = "http://127.0.0.1:" + port;
    env = Map.of("BATON_DATABASE_SCHEMA", "t_" + unique, "BATON_TOPIC_PREFIX", prefix,
        "BATON_REDIS_PREFIX", "t:" + unique + ":", "BATON_ENGINE_GROUP_ID", prefix + "engine",
        "BATON_TOPIC_PARTITIONS", "2", "BATON_API_KEYS", extraEnv.getOrDefault("BATON_API_KEYS", ""));
    log = TEST_CLASSES.getParent().resolve("baton-server-" + unique + ".log");
    ProcessBuilder builder = new ProcessBuilder(BIN.resolve("baton").toString(), "server", "--port",
        Integer.toString(port)).redirectErrorStream(true).redirectOutput(log.toFile());
    builder.environment().putAll(env);
    process = builder.start();
  }

  /** Starts a server and waits (up to 60 s) for {@code /health} 200; {@code BATON_API_KEYS} may be given. */
  static Orchestrator start(Map<String, String> extraEnv) throws IOException {
    requireStack();
    Orchestrator orchestrator = new Orchestrator(extraEnv);
    try {
      await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(200)).until(orchestrator::healthy);
    } catch (Throwable e) {
      String tail = orchestrator.logTail();
      orchestrator.close();
      Assertions.fail("baton server did not become healthy: " + e + "\n" + tail);
    }
    return orchestrator;
  }

  /** A worker of this SDK on the server's topics, in a group of its own. */
  WorkerBuilder worker() {
    return Worker.builder().bootstrapServers(BOOTSTRAP).groupId(prefix + "workers").topicPrefix(prefix)
        .topicPartitions(2).drainTimeout(Duration.ofSeconds(5));
  }

  private boolean healthy() throws IOException {
    if (!process.isAlive()) {
      throw new IllegalStateException("baton server exited with " + process.exitValue());
    }
    try {
      HttpURLConnection connection = (HttpURLConnection) URI.create(url + "/health").toURL().openConnection();
      connection.setConnectTimeout(2000);
      connection.setReadTimeout(2000);
      return connection.getResponseCode() == 200;
    } catch (IOException notYet) {
      return false;
    }
  }

  String logTail() {
    try {
      String text = Files.readString(log, StandardCharsets.UTF_8);
      return text.substring(Math.max(0, text.length() - 3000));
    } catch (IOException e) {
      return "(no log: " + e + ")";
    }
  }

  @Override
  public void close() {
    process.destroy(); // SIGTERM: the server shuts down its engine loops and pools
    try {
      if (!process.waitFor(20, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
      dropSchema();
      deleteTopics();
    } catch (Exception e) {
      throw new IllegalStateException("cleanup of " + unique + " failed", e);
    }
  }

  /** Through the venv's psycopg, with the server's own settings: the same database URL and schema. */
  private void dropSchema() throws Exception {
    String script = "import psycopg\nfrom baton_orchestrator.settings import Settings\ns = Settings()\n"
        + "url = 'postgresql://' + s.database_url.split('://', 1)[1]\n"
        + "with psycopg.connect(url, autocommit=True) as c:\n"
        + "    c.execute('DROP SCHEMA IF EXISTS \"%s\" CASCADE' % s.database_schema)\n";
    ProcessBuilder builder = new ProcessBuilder(BIN.resolve("python").toString(), "-c", script)
        .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
    builder.environment().putAll(env);
    Process drop = builder.start();
    if (!drop.waitFor(30, TimeUnit.SECONDS) || drop.exitValue() != 0) {
      drop.destroyForcibly();
      throw new IllegalStateException("DROP SCHEMA t_" + unique + " failed:\n" + logTail());
    }
  }

  private void deleteTopics() throws Exception {
    try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP,
        AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 10_000, AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000))) {
      List<String> topics = admin.listTopics().names().get(10, TimeUnit.SECONDS).stream()
          .filter(t -> t.startsWith(prefix)).collect(Collectors.toList());
      if (!topics.isEmpty()) {
        admin.deleteTopics(topics).all().get(10, TimeUnit.SECONDS);
      }
    }
  }

  private static void requireStack() {
    String why = null;
    if (!Files.isExecutable(BIN.resolve("baton"))) {
      why = BIN.resolve("baton") + " is missing: run `make setup`";
    } else if (!reachable(BOOTSTRAP)) {
      why = "Kafka is not reachable at " + BOOTSTRAP;
    }
    if (why != null) {
      if ("true".equalsIgnoreCase(System.getenv("CI"))) {
        Assertions.fail(why);
      }
      Assumptions.abort(why);
    }
  }

  private static boolean reachable(String bootstrap) {
    String first = bootstrap.split(",")[0].strip();
    int colon = first.lastIndexOf(':');
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress(first.substring(0, colon), Integer.parseInt(first.substring(colon + 1))),
          2000);
      return true;
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  private static Path testClasses() {
    try {
      return Path.of(Orchestrator.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    } catch (Exception e) {
      throw new IllegalStateException("cannot locate the repository from the test classes", e);
    }
  }
}
