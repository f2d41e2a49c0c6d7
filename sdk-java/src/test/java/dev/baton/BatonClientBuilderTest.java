package dev.baton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Options, their environment fallbacks and the messages of invalid ones (no server needed). */
class BatonClientBuilderTest {
  private static BatonClientBuilder withEnv(Map<String, String> env) {
    return BatonClient.builder().env(env::get);
  }

  @Test
  void shouldUseTheDefaultsWhenNothingIsSet() {
    try (BatonClient client = withEnv(Map.of()).build()) {
      assertThat(client.url()).isEqualTo("http://127.0.0.1:8080");
      assertThat(client.timeout()).isEqualTo(Duration.ofSeconds(30));
    }
  }

  @Test
  void shouldFallBackToTheEnvironmentWhenAnOptionIsUnset() {
    try (BatonClient client = withEnv(Map.of("BATON_API_URL", " https://baton.example:9000/api/ ")).build()) {
      assertThat(client.url()).isEqualTo("https://baton.example:9000/api");
    }
    try (BatonClient client = withEnv(Map.of("BATON_API_URL", "http://x:1")).url("http://y:2").build()) {
      assertThat(client.url()).isEqualTo("http://y:2");
    }
  }

  @Test
  void shouldThrowIllegalArgumentNamingTheOptionWhenInvalid() {
    assertThatThrownBy(() -> withEnv(Map.of()).url("127.0.0.1:8080").build())
        .isInstanceOf(IllegalArgumentException.class).hasMessage("url must be an http:// or https:// URL");
    assertThatThrownBy(() -> withEnv(Map.of("BATON_API_URL", "ftp://x")).build())
        .hasMessage("url must be an http:// or https:// URL");
    assertThatThrownBy(() -> withEnv(Map.of()).apiKey("two words").build())
        .hasMessage("apiKey must be printable ASCII without spaces");
    assertThatThrownBy(() -> withEnv(Map.of("BATON_API_KEY", "a\nb")).build())
        .hasMessage("apiKey must be printable ASCII without spaces");
    assertThatThrownBy(() -> withEnv(Map.of()).timeout(Duration.ZERO).build())
        .hasMessage("timeout must be a positive duration");
    assertThatThrownBy(() -> withEnv(Map.of()).timeout(null).build())
        .hasMessage("timeout must be a positive duration");
  }

  @Test
  void shouldThrowIllegalArgumentWhenAWaitIsNegative() {
    try (BatonClient client = withEnv(Map.of()).build()) {
      assertThatThrownBy(() -> client.waitForRun("r", Duration.ofSeconds(-1)))
          .isInstanceOf(IllegalArgumentException.class).hasMessage("timeout must be a non-negative duration");
      assertThatThrownBy(() -> client.trigger("wf", 1, null, Duration.ofMillis(-1)))
          .hasMessage("wait must be a non-negative duration");
    }
  }
}
