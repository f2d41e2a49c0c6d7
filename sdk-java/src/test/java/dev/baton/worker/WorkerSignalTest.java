package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** SIGTERM stops a worker promptly whatever it is doing: starting without Kafka, rebalancing, draining. */
class WorkerSignalTest {
  /** The JVM's exit status after SIGTERM (128 + 15). */
  private static final int SIGTERM_EXIT = 143;
  private static final int SIGINT_EXIT = 130;

  private TestKafka kafka;
  private Process child;

  @BeforeEach
  void setUp() {
    kafka = new TestKafka();
  }

  @AfterEach
  void tearDown() throws Exception {
    if (child != null && child.isAlive()) {
      child.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }
    kafka.close();
  }

  @Test
  void shouldExitPromptlyWhenSigtermArrivesWhileKafkaIsUnreachableAtStartup() throws Exception {
    LinkedBlockingQueue<String> lines = startChild(unusedBootstrap(), "sleep", 30_000);
    awaitLine(lines, "STARTING");
    Thread.sleep(500); // let it get into the wait for Kafka; the assertion below is about the exit

    assertThat(sigtermAndTimeExit()).isLessThan(Duration.ofSeconds(5));
    assertThat(child.exitValue()).isEqualTo(SIGTERM_EXIT);
  }

  @Test
  void shouldExitPromptlyWhenSigintArrivesWhileKafkaIsUnreachableAtStartup() throws Exception {
    LinkedBlockingQueue<String> lines = startChild(unusedBootstrap(), "sleep", 30_000);
    awaitLine(lines, "STARTING");
    Thread.sleep(500); // let it get into the wait for Kafka; the assertion below is about the exit

    long start = System.nanoTime();
    Process kill = new ProcessBuilder("kill", "-INT", Long.toString(child.pid())).start(); // Ctrl-C
    assertThat(kill.waitFor(10, TimeUnit.SECONDS)).isTrue();
    assertThat(child.waitFor(60, TimeUnit.SECONDS)).as("exited").isTrue();
    assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(5));
    assertThat(child.exitValue()).isEqualTo(SIGINT_EXIT);
  }

  @Test
  void shouldExitWithinTheDrainTimeoutWhenSigtermArrivesWhileAHandlerIgnoresIt() throws Exception {
    kafka.createJobTopics(1, "signal");
    kafka.sendJob("signal", "job-stuck", "null");
    LinkedBlockingQueue<String> lines = startChild(TestKafka.BOOTSTRAP, "stuck", 2_000);
    awaitLine(lines, "STARTED job-stuck");

    assertThat(sigtermAndTimeExit()).isLessThan(Duration.ofSeconds(2 + 6));
    assertThat(child.exitValue()).isEqualTo(SIGTERM_EXIT);
    assertThat(kafka.committed("signal")).as("the unfinished job stays uncommitted").isZero();
  }

  @Test
  void shouldExitPromptlyWhenSigtermArrivesDuringARebalance() throws Exception {
    kafka.createJobTopics(1, "signal");
    kafka.sendJob("signal", "job-long", "null");
    LinkedBlockingQueue<String> lines = startChild(TestKafka.BOOTSTRAP, "sleep", 1_000);
    awaitLine(lines, "STARTED job-long");
    try (Worker joining = kafka.worker().build()) {
      joining.register("signal", payload -> payload);
      joining.startAsync();
      // The child's revocation now waits (up to 5 s) for the job it runs.
      awaitLine(lines, "rebalance: waiting up to");

      assertThat(sigtermAndTimeExit()).isLessThan(Duration.ofMillis(4_500));
      assertThat(child.exitValue()).isEqualTo(SIGTERM_EXIT);
    }
  }

  /** Waits for a line of the child's output (stdout and its log) that contains {@code text}. */
  private static void awaitLine(LinkedBlockingQueue<String> lines, String text) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (System.nanoTime() < deadline) {
      String line = lines.poll(100, TimeUnit.MILLISECONDS);
      if (line != null && line.contains(text)) {
        return;
      }
    }
    throw new AssertionError("the child never printed '" + text + "'");
  }

  private Duration sigtermAndTimeExit() throws InterruptedException {
    long start = System.nanoTime();
    child.destroy(); // SIGTERM
    assertThat(child.waitFor(60, TimeUnit.SECONDS)).as("exited").isTrue();
    return Duration.ofNanos(System.nanoTime() - start);
  }

  private static String unusedBootstrap() throws Exception {
    try (ServerSocket socket = new ServerSocket(0)) {
      return "127.0.0.1:" + socket.getLocalPort();
    }
  }

  private LinkedBlockingQueue<String> startChild(String bootstrap, String mode, long drainMs) throws Exception {
    String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
    List<String> command = new ArrayList<>(List.of(java, "-cp", classpath, SignalWorkerMain.class.getName(),
        bootstrap, kafka.prefix, kafka.group, mode, Long.toString(drainMs)));
    ProcessBuilder builder = new ProcessBuilder(command);
    builder.redirectErrorStream(true); // its log too: the rebalance test waits for a log line
    child = builder.start();
    LinkedBlockingQueue<String> lines = new LinkedBlockingQueue<>();
    Thread reader = new Thread(() -> {
      try (BufferedReader out = new BufferedReader(
          new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
        String line;
        while ((line = out.readLine()) != null) {
          lines.add(line);
        }
      } catch (Exception e) {
        // the child is gone; nothing more to read
      }
    }, "child-stdout");
    reader.setDaemon(true);
    reader.start();
    return lines;
  }
}
