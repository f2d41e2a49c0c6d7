package dev.baton.worker.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class BoundsTest {
  @Test
  void shouldKeepTextWhenWithinTheBound() {
    assertThat(Bounds.message("short")).isEqualTo("short");
    String exact = "x".repeat(Bounds.MESSAGE_BYTES);
    assertThat(Bounds.message(exact)).isSameAs(exact);
  }

  @Test
  void shouldCutToTheBoundAndSayHowMuchWhenTextIsLonger() {
    String cut = Bounds.message("x".repeat(10_000));
    assertThat(bytes(cut)).isLessThanOrEqualTo(Bounds.MESSAGE_BYTES);
    int kept = cut.indexOf(" …[cut ");
    assertThat(cut).endsWith(" …[cut " + (10_000 - kept) + " bytes]");
    assertThat(bytes(cut)).isGreaterThan(Bounds.MESSAGE_BYTES - 4); // keeps as much as fits
  }

  @Test
  void shouldNotSplitACodePointWhenCuttingMultiByteText() {
    String emoji = "\uD83D\uDE00"; // 4 bytes in UTF-8
    String cut = Bounds.stacktrace(emoji.repeat(10_000));
    assertThat(bytes(cut)).isLessThanOrEqualTo(Bounds.STACKTRACE_BYTES);
    String kept = cut.substring(0, cut.indexOf(" …[cut "));
    assertThat(kept.length() % 2).isZero();
    assertThat(Bounds.firstLoneSurrogate(cut)).isEqualTo(-1);
    assertThat(cut).endsWith(" …[cut " + (40_000 - bytes(kept)) + " bytes]");
  }

  @Test
  void shouldReplaceLoneSurrogatesWhenTextHasThem() {
    assertThat(Bounds.message("a\uD800b\uDC00c\uD83D\uDE00")).isEqualTo("a\uFFFDb\uFFFDc\uD83D\uDE00");
    assertThat(Bounds.message("end\uD800")).isEqualTo("end\uFFFD");
  }

  @Test
  void shouldSeeOnlyRealEscapesWhenCheckingJsonForLoneSurrogates() {
    assertThat(Envelopes.hasLoneSurrogateEscape(utf8("\"a\\uD800b\""))).isTrue();
    assertThat(Envelopes.hasLoneSurrogateEscape(utf8("{\"k\\udc00\":1}"))).isTrue();
    assertThat(Envelopes.hasLoneSurrogateEscape(utf8("\"a\\\\uD800b\""))).isFalse(); // a literal backslash
    assertThat(Envelopes.hasLoneSurrogateEscape(utf8("\"\\u00e9 \\uE000\""))).isFalse();
  }

  private static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  private static int bytes(String text) {
    return utf8(text).length;
  }
}
