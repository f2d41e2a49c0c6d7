package dev.baton.worker.internal;

import static org.assertj.core.api.Assertions.assertThat;

import dev.baton.worker.NonRetryableError;
import dev.baton.worker.RetryLater;
import java.time.Duration;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.Test;

class FailureTest {
  @Test
  void shouldBeRetryableWithClassNameWhenAnyOtherExceptionThrown() {
    Failure failure = Failure.of(new IllegalArgumentException("bad"));
    assertThat(failure.type()).isEqualTo("IllegalArgumentException");
    assertThat(failure.message()).isEqualTo("bad");
    assertThat(failure.stacktrace()).contains("FailureTest");
    assertThat(failure.retryable()).isTrue();
    assertThat(failure.retryAfterMs()).isNull();
  }

  @Test
  void shouldNotRetryWhenNonRetryableErrorThrown() {
    Failure failure = Failure.of(new NonRetryableError("card declined"));
    assertThat(failure.type()).isEqualTo("NonRetryableError");
    assertThat(failure.retryable()).isFalse();
  }

  @Test
  void shouldCarryDelayWhenRetryLaterThrown() {
    Failure failure = Failure.of(new RetryLater(Duration.ofMillis(1500)));
    assertThat(failure.type()).isEqualTo("RetryLater");
    assertThat(failure.retryable()).isTrue();
    assertThat(failure.retryAfterMs()).isEqualTo(1500);
    assertThat(new RetryLater(Duration.ofMillis(1500)).code()).isEqualTo("BATON_RETRY_LATER");
  }

  @Test
  void shouldReportHandlerErrorWhenWrappedByCompletionStage() {
    Failure failure = Failure.of(new CompletionException(new NonRetryableError("inner")));
    assertThat(failure.type()).isEqualTo("NonRetryableError");
    assertThat(failure.message()).isEqualTo("inner");
  }

  @Test
  void shouldUseEmptyMessageWhenExceptionHasNone() {
    assertThat(Failure.of(new NullPointerException()).message()).isEmpty();
  }
}
