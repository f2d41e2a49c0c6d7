package dev.baton.worker;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class VersionTest {
  @Test
  void shouldReportSemanticVersion() {
    assertThat(Version.SDK_VERSION).matches("\\d+\\.\\d+\\.\\d+");
  }
}
