package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Two workers with different action sets in ONE group, the shape of a polyglot deployment (DESIGN §2):
 * every job runs on a worker that registered its action and nothing is dead-lettered, whichever worker
 * joined first and so leads the group (the leader computes the assignment).
 */
class WorkerGroupTest {
  private static final Duration WAIT = Duration.ofSeconds(30);
  private static final Map<String, List<String>> ACTIONS = Map.of("A", List.of("x", "shared"), "B", List.of("y", "shared"));

  private TestKafka kafka;

  @BeforeEach
  void setUp() {
    kafka = new TestKafka();
  }

  @AfterEach
  void tearDown() throws Exception {
    kafka.close();
  }

  @ParameterizedTest(name = "worker {0} joins first")
  @ValueSource(strings = {"A", "B"})
  void shouldRunEveryJobOnWorkerThatRegisteredItsActionWhenSubscriptionsDiffer(String first) throws Exception {
    String second = first.equals("A") ? "B" : "A";
    TestKafka.Reader results = kafka.reader("results");
    Map<String, Worker> workers = new HashMap<>();
    try {
      for (String name : List.of(first, second)) {
        Worker worker = kafka.worker().build();
        workers.put(name, worker);
        for (String action : ACTIONS.get(name)) {
          worker.register(action, (payload, ctx) -> ctx.action() + ":" + payload);
        }
        worker.startAsync();
        // The first member alone in the group becomes its leader and stays leader after the second joins.
        awaitStableGroup(workers.size());
      }

      List<String> jobIds = new ArrayList<>();
      for (String action : List.of("x", "y", "shared")) {
        for (int i = 0; i < 6; i++) {
          String jobId = action + "-" + i;
          jobIds.add(jobId);
          kafka.sendJob(action, jobId, Integer.toString(i));
        }
      }

      List<JsonNode> got = results.awaitJson(jobIds.size(), WAIT);
      Map<String, String> owner = Map.of(workers.get("A").id(), "A", workers.get("B").id(), "B");
      Map<String, List<JsonNode>> byJob = new HashMap<>();
      got.forEach(r -> byJob.computeIfAbsent(r.get("job_id").asText(), k -> new ArrayList<>()).add(r));
      Set<String> ranShared = new HashSet<>();
      for (String jobId : jobIds) {
        String action = jobId.substring(0, jobId.indexOf('-'));
        assertThat(byJob.get(jobId)).as("results of %s", jobId).hasSize(1);
        JsonNode result = byJob.get(jobId).get(0);
        assertThat(result.get("status").asText()).isEqualTo("COMPLETED");
        String ranOn = owner.get(result.at("/worker/id").asText());
        assertThat(ranOn).as("worker of %s", jobId).isNotNull();
        assertThat(ACTIONS.get(ranOn)).as("actions of worker %s, which ran %s", ranOn, jobId).contains(action);
        if (action.equals("shared")) {
          ranShared.add(ranOn);
        }
      }
      assertThat(ranShared).as("both workers share the 3 partitions of the shared action").hasSize(2);
      assertThat(endOffsetSum("jobs.DLT")).as("dead-lettered records").isZero();
    } finally {
      workers.values().forEach(Worker::close);
    }
  }

  @Test
  void shouldNotRerunJobsInFlightWhenRebalanceKeepsTheirPartitions() throws Exception {
    TestKafka.Reader results = kafka.reader("results");
    AtomicInteger runs = new AtomicInteger();
    CountDownLatch started = new CountDownLatch(3);
    try (Worker slow = kafka.worker().build(); Worker other = kafka.worker().build()) {
      slow.register("slow", payload -> {
        runs.incrementAndGet();
        started.countDown();
        Thread.sleep(3000);
        return "done " + payload;
      });
      other.register("y", payload -> payload);
      slow.startAsync();
      awaitStableGroup(1);
      for (int i = 0; i < 3; i++) {
        kafka.sendJob("slow", "slow-" + i, Integer.toString(i));
      }
      assertThat(started.await(30, TimeUnit.SECONDS)).isTrue();
      // The eager rebalance revokes the "slow" partitions and hands them straight back (the other worker
      // does not subscribe to them) while all three jobs are still running.
      other.startAsync();
      awaitStableGroup(2);

      List<JsonNode> got = results.awaitJson(3, WAIT);
      Thread.sleep(1000); // a rerun would have started right after the rebalance, seconds ago
      assertThat(got).extracting(r -> r.get("job_id").asText()).containsExactlyInAnyOrder("slow-0", "slow-1", "slow-2");
      assertThat(runs.get()).as("handler runs").isEqualTo(3);
      assertThat(results.awaitJson(3, WAIT)).hasSize(3);
    }
  }

  @Test
  void shouldNotRerunJobsInFlightWhenTheirPartitionsMoveToAJoiningWorker() throws Exception {
    kafka.createJobTopics(4, "slow");
    TestKafka.Reader results = kafka.reader("results");
    AtomicInteger runs = new AtomicInteger();
    CountDownLatch started = new CountDownLatch(4);
    JobHandler slowJob = payload -> {
      runs.incrementAndGet();
      started.countDown();
      Thread.sleep(2000);
      return "done " + payload;
    };
    try (Worker first = kafka.worker().build(); Worker second = kafka.worker().build()) {
      first.register("slow", slowJob);
      second.register("slow", slowJob);
      first.startAsync();
      awaitStableGroup(1);
      for (int i = 0; i < 4; i++) {
        kafka.sendJob("slow", "moving-" + i, Integer.toString(i));
      }
      assertThat(started.await(30, TimeUnit.SECONDS)).isTrue();
      // The second worker takes half of the partitions while all four jobs run on the first: the
      // rebalance waits for them, so the partitions move with their offsets committed past those jobs.
      second.startAsync();
      awaitStableGroup(2);

      List<JsonNode> got = results.awaitJson(4, WAIT);
      Thread.sleep(2500); // a rerun would have started when the partitions moved, and finished by now
      assertThat(got).extracting(r -> r.get("job_id").asText())
          .containsExactlyInAnyOrder("moving-0", "moving-1", "moving-2", "moving-3");
      assertThat(runs.get()).as("handler runs").isEqualTo(4);
      assertThat(results.awaitJson(4, WAIT)).hasSize(4);
    }
  }

  private void awaitStableGroup(int members) {
    await().atMost(WAIT).pollInterval(Duration.ofMillis(100)).ignoreExceptions().until(() -> {
      ConsumerGroupDescription group = kafka.admin.describeConsumerGroups(List.of(kafka.group))
          .describedGroups().get(kafka.group).get(5, TimeUnit.SECONDS);
      return group.groupState() == GroupState.STABLE && group.members().size() == members
          && group.members().stream().map(MemberDescription::assignment)
              .allMatch(a -> !a.topicPartitions().isEmpty());
    });
  }

  private long endOffsetSum(String suffix) throws Exception {
    String topic = kafka.prefix + suffix;
    int partitions = kafka.admin.describeTopics(List.of(topic)).allTopicNames().get(5, TimeUnit.SECONDS)
        .get(topic).partitions().size();
    Map<TopicPartition, OffsetSpec> request = new HashMap<>();
    for (int p = 0; p < partitions; p++) {
      request.put(new TopicPartition(topic, p), OffsetSpec.latest());
    }
    return kafka.admin.listOffsets(request).all().get(5, TimeUnit.SECONDS).values().stream()
        .mapToLong(info -> info.offset()).sum();
  }
}
