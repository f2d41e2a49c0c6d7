package dev.baton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.util.Map;
import org.junit.jupiter.api.Test;

/** The bearer token against a real {@code baton server} started with {@code BATON_API_KEYS=secret}. */
class BatonClientAuthTest {
  @Test
  void shouldSendTheBearerTokenWhenTheServerRequiresApiKeys() throws Exception {
    try (Orchestrator orchestrator = Orchestrator.start(Map.of("BATON_API_KEYS", "secret"));
        BatonClient none = BatonClient.builder().url(orchestrator.url).apiKey("").build();
        BatonClient wrong = BatonClient.builder().url(orchestrator.url).apiKey("not-the-key").build();
        BatonClient right = BatonClient.builder().url(orchestrator.url)
            .env(name -> "BATON_API_KEY".equals(name) ? " secret " : null).build()) {
      Unauthorized missing = catchThrowableOfType(Unauthorized.class, none::listRuns);
      assertThat(missing.status()).isEqualTo(401);
      assertThat(missing.errorCode()).isEqualTo("unauthorized");
      Forbidden invalid = catchThrowableOfType(Forbidden.class, () -> wrong.listDeadLetters());
      assertThat(invalid.status()).isEqualTo(403);
      assertThat(invalid.errorCode()).isEqualTo("forbidden");

      assertThat(right.listRuns()).isEmpty();
      assertThat(right.define(Map.of("id", "clt-auth", "steps", java.util.List.of(Map.of("action", "clt.echo"))))
          .get("id").asText()).isEqualTo("clt-auth");
    }
  }
}
