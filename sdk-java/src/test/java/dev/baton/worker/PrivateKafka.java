package dev.baton.worker;

import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * A single-node KRaft broker of the test's own, on free ports, for the scenario that stops Kafka: the
 * shared broker is never touched. Same jars and settings as {@code infra/stack.sh} (its {@code pom.xml}
 * and {@code server.properties.in}), resolved once per build into {@code target/kafka-lib}.
 */
final class PrivateKafka implements AutoCloseable {
  private static final Path INFRA = Path.of("..", "infra").toAbsolutePath().normalize();
  private static final Path LIB = Path.of("target", "kafka-lib").toAbsolutePath();

  final String bootstrap;
  private final Path dir;
  private final Path props;
  private Process broker;

  private PrivateKafka() throws Exception {
    Assumptions.assumeTrue(Files.isRegularFile(INFRA.resolve("server.properties.in")), "no infra/ next to sdk-java");
    dir = Files.createTempDirectory(Path.of("target").toAbsolutePath(), "private-kafka-");
    int port = freePort();
    int controllerPort = freePort();
    bootstrap = "127.0.0.1:" + port;
    props = dir.resolve("server.properties");
    String template = Files.readString(INFRA.resolve("server.properties.in"));
    Files.writeString(props, template.replace("@KAFKA_PORT@", Integer.toString(port))
        .replace("@CONTROLLER_PORT@", Integer.toString(controllerPort))
        .replace("@DATA_DIR@", dir.resolve("data").toString()));
  }

  /** Resolves the broker jars if needed, formats a fresh data dir and starts the broker. */
  static PrivateKafka start() throws Exception {
    resolveJars();
    PrivateKafka kafka = new PrivateKafka();
    String clusterId = kafka.output(kafka.java("kafka.tools.StorageTool", "random-uuid")).trim();
    kafka.run(kafka.java("kafka.tools.StorageTool", "format", "--standalone", "-t", clusterId, "-c",
        kafka.props.toString()));
    kafka.startBroker();
    return kafka;
  }

  /** (Re)starts the broker on the same ports and data, and waits until it accepts connections. */
  void startBroker() throws Exception {
    List<String> command = java("kafka.Kafka", props.toString());
    broker = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("kafka.out").toFile())).start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
    while (!accepts()) {
      if (!broker.isAlive() || System.nanoTime() > deadline) {
        throw new IllegalStateException("private broker did not start; see " + dir.resolve("kafka.out"));
      }
      Thread.sleep(200);
    }
  }

  /** SIGTERM, as an operator would stop it; SIGKILL if it takes longer than 30 s. */
  void stopBroker() throws InterruptedException {
    if (broker == null || !broker.isAlive()) {
      return;
    }
    broker.destroy();
    if (!broker.waitFor(30, TimeUnit.SECONDS)) {
      broker.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }
  }

  @Override
  public void close() throws Exception {
    stopBroker();
    try (Stream<Path> files = Files.walk(dir)) {
      files.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
    }
  }

  private boolean accepts() {
    String[] hostPort = bootstrap.split(":");
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress(hostPort[0], Integer.parseInt(hostPort[1])), 500);
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  private List<String> java(String mainClass, String... args) {
    List<String> command = new ArrayList<>(List.of(
        System.getProperty("java.home") + File.separator + "bin" + File.separator + "java",
        "-Xms64m", "-Xmx256m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        "-Dlog4j2.configurationFile=" + INFRA.resolve("log4j2.properties"),
        "-Dbaton.kafka.log=" + dir.resolve("kafka.log"), "-cp", LIB + File.separator + "*", mainClass));
    command.addAll(List.of(args));
    return command;
  }

  private String output(List<String> command) throws Exception {
    Process process = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
    String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    check(process, command);
    return out;
  }

  private void run(List<String> command) throws Exception {
    Process process = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("kafka.out").toFile())).start();
    check(process, command);
  }

  private static void check(Process process, List<String> command) throws InterruptedException {
    if (!process.waitFor(120, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      throw new IllegalStateException("timed out: " + command);
    }
    if (process.exitValue() != 0) {
      throw new IllegalStateException("exit " + process.exitValue() + ": " + command);
    }
  }

  private static synchronized void resolveJars() throws Exception {
    if (Files.isDirectory(LIB)) {
      try (Stream<Path> jars = Files.list(LIB)) {
        if (jars.findAny().isPresent()) {
          return;
        }
      }
    }
    Process mvn = new ProcessBuilder("mvn", "-q", "-B", "-f", INFRA.resolve("pom.xml").toString(),
        "dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory=" + LIB)
        .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
    check(mvn, List.of("mvn dependency:copy-dependencies for the broker jars"));
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }
}
