package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Process-level delivery: a worker SIGKILLed mid-job loses nothing (the job runs again on another worker),
 * and a SIGTERMed one drains its running jobs before exiting.
 */
class WorkerCrashTest {
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
  void shouldRedeliverJobToSecondWorkerWhenFirstIsKilledMidJob() throws Exception {
    kafka.createJobTopics(1, "crashy");
    kafka.sendJob("crashy", "job-crash", "\"payload\"");
    LinkedBlockingQueue<String> lines = startChild(List.of());
    String started = lines.poll(60, TimeUnit.SECONDS);
    assertThat(started).isEqualTo("STARTED job-crash");

    child.destroyForcibly(); // SIGKILL: no drain, no commit, no STOPPED heartbeat
    assertThat(child.waitFor(10, TimeUnit.SECONDS)).isTrue();

    Worker second = kafka.worker().build();
    second.register("crashy", (payload, ctx) -> "second worker ran " + ctx.jobId() + " with " + payload);
    RunReport report = second.runUntilIdle(Duration.ofSeconds(60));

    assertThat(report.completed()).isEqualTo(1);
    List<JsonNode> results = kafka.reader("results").awaitJson(1, Duration.ofSeconds(30));
    assertThat(results).hasSize(1);
    assertThat(results.get(0).get("job_id").asText()).isEqualTo("job-crash");
    assertThat(results.get(0).get("output").asText()).isEqualTo("second worker ran job-crash with payload");
    assertThat(kafka.committed("crashy")).isEqualTo(1);
  }

  @Test
  void shouldSendAllResultsAndCommitWhenSigtermArrivesWithThreeJobsInFlight() throws Exception {
    kafka.createJobTopics(1, "crashy");
    for (int i = 0; i < 3; i++) {
      kafka.sendJob("crashy", "job-" + i, Integer.toString(i));
    }
    LinkedBlockingQueue<String> lines = startChild(List.of("1500"));
    for (int i = 0; i < 3; i++) {
      assertThat(lines.poll(60, TimeUnit.SECONDS)).startsWith("STARTED job-");
    }

    child.destroy(); // SIGTERM: the shutdown hook drains the three running jobs
    assertThat(child.waitFor(30, TimeUnit.SECONDS)).isTrue();

    List<JsonNode> results = kafka.reader("results").awaitJson(3, Duration.ofSeconds(30));
    assertThat(results).extracting(r -> r.get("status").asText()).containsOnly("COMPLETED");
    assertThat(results).extracting(r -> r.get("job_id").asText())
        .containsExactlyInAnyOrder("job-0", "job-1", "job-2");
    assertThat(kafka.committed("crashy")).isEqualTo(3);
  }

  private LinkedBlockingQueue<String> startChild(List<String> extraArgs) throws Exception {
    String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
    List<String> command = new java.util.ArrayList<>(List.of(java, "-cp", classpath,
        KillableWorkerMain.class.getName(), TestKafka.BOOTSTRAP, kafka.prefix, kafka.group));
    command.addAll(extraArgs);
    ProcessBuilder builder = new ProcessBuilder(command);
    builder.redirectError(new File("target", "crash-test-child.log"));
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
        // the child was killed; nothing more to read
      }
    }, "child-stdout");
    reader.setDaemon(true);
    reader.start();
    return lines;
  }
}
