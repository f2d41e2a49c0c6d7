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

/** At-least-once across a crash: a job whose worker is SIGKILLed mid-job runs again on another worker. */
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
    LinkedBlockingQueue<String> lines = startChild();
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

  private LinkedBlockingQueue<String> startChild() throws Exception {
    String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
    ProcessBuilder builder = new ProcessBuilder(java, "-cp", classpath, KillableWorkerMain.class.getName(),
        TestKafka.BOOTSTRAP, kafka.prefix, kafka.group);
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
