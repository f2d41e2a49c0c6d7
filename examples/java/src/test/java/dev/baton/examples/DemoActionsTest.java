package dev.baton.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.baton.worker.NonRetryableError;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class DemoActionsTest {
  @Test
  void shouldScoreByCompactJsonLengthWhenGivenAnyInput() throws Exception {
    Map<String, Object> input = new LinkedHashMap<>();
    input.put("a", 1);
    input.put("b", List.of("x"));
    Map<String, Object> out = DemoActions.score(input);
    assertThat(out).containsEntry("score", "{\"a\":1,\"b\":[\"x\"]}".length())
        .containsEntry("scored_by", "java").containsEntry("input", input);
    assertThat(DemoActions.score("Hello World").get("score")).isEqualTo(13);
    assertThat(DemoActions.score(null).get("score")).isEqualTo(4);
  }

  @Test
  void shouldSumListsAndFanInMapsWhenNumeric() {
    assertThat(DemoActions.sum(List.of(1, 2, 3))).isEqualTo(6L);
    assertThat(DemoActions.sum(List.of(1, 2.5))).isEqualTo(3.5);
    assertThat(DemoActions.sum(Map.of("py", Map.of("n", 1), "node", Map.of("n", 2), "x", 4))).isEqualTo(7L);
  }

  @Test
  void shouldRejectWhenInputIsNotNumeric() {
    assertThatThrownBy(() -> DemoActions.sum("nope")).isInstanceOf(NonRetryableError.class);
    assertThatThrownBy(() -> DemoActions.sum(List.of("a"))).isInstanceOf(NonRetryableError.class);
  }
}
