package dev.baton.worker.internal;

import java.nio.charset.StandardCharsets;

/**
 * The contract's bounds on error text: a message is cut to 4,096 UTF-8 bytes and a stack trace to 16,384,
 * at a character boundary, ending in {@code " …[cut N bytes]"} (inside the bound); lone surrogates become
 * U+FFFD, since they are not UTF-8 and the engine's JSON store rejects their escapes.
 */
public final class Bounds {
  public static final int MESSAGE_BYTES = 4096;
  public static final int STACKTRACE_BYTES = 16384;

  private Bounds() {}

  public static String message(String text) {
    return cut(wellFormed(text), MESSAGE_BYTES);
  }

  public static String stacktrace(String text) {
    return cut(wellFormed(text), STACKTRACE_BYTES);
  }

  /** {@code text} with every unpaired surrogate replaced by U+FFFD. */
  public static String wellFormed(String text) {
    int bad = firstLoneSurrogate(text);
    if (bad < 0) {
      return text;
    }
    StringBuilder out = new StringBuilder(text.length()).append(text, 0, bad);
    for (int i = bad; i < text.length(); i++) {
      char c = text.charAt(i);
      if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
        out.append(c).append(text.charAt(++i));
      } else {
        out.append(Character.isSurrogate(c) ? '\uFFFD' : c);
      }
    }
    return out.toString();
  }

  /** Index of the first unpaired surrogate, or -1. */
  public static int firstLoneSurrogate(String text) {
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
        i++;
      } else if (Character.isSurrogate(c)) {
        return i;
      }
    }
    return -1;
  }

  /** Cuts well-formed {@code text} to {@code bound} UTF-8 bytes, marker included. */
  static String cut(String text, int bound) {
    int total = utf8Length(text, text.length());
    if (total <= bound) {
      return text;
    }
    // The marker's length depends on N, and N on where the cut falls: two rounds settle it (a shorter
    // guess of N only makes the first round keep too little, never too much).
    int keepChars = 0;
    int keptBytes = 0;
    for (int round = 0; round < 2; round++) {
      int room = bound - utf8Length(marker(total - keptBytes));
      keepChars = charsWithin(text, room);
      keptBytes = utf8Length(text, keepChars);
    }
    return text.substring(0, keepChars) + marker(total - keptBytes);
  }

  private static String marker(int cutBytes) {
    return " …[cut " + cutBytes + " bytes]";
  }

  /** How many chars of {@code text} fit in {@code room} UTF-8 bytes without splitting a code point. */
  private static int charsWithin(String text, int room) {
    int bytes = 0;
    int i = 0;
    while (i < text.length()) {
      int cp = text.codePointAt(i);
      int size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      if (bytes + size > room) {
        break;
      }
      bytes += size;
      i += Character.charCount(cp);
    }
    return i;
  }

  private static int utf8Length(String text) {
    return text.getBytes(StandardCharsets.UTF_8).length;
  }

  private static int utf8Length(String text, int chars) {
    int bytes = 0;
    for (int i = 0; i < chars; i++) {
      char c = text.charAt(i);
      if (c < 0x80) {
        bytes += 1;
      } else if (c < 0x800) {
        bytes += 2;
      } else if (Character.isHighSurrogate(c)) {
        bytes += 4;
        i++;
      } else {
        bytes += 3;
      }
    }
    return bytes;
  }
}
