package dev.baton.worker.internal;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;

/** The one shared ObjectMapper (thread-safe once configured) and the RFC 3339 timestamp format. */
public final class Json {
  public static final ObjectMapper MAPPER =
      new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  private static final DateTimeFormatter MILLIS_UTC =
      DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

  private Json() {}

  /** RFC 3339 UTC with milliseconds and {@code Z}, as every SDK writes it. */
  public static String timestamp(Instant instant) {
    return MILLIS_UTC.format(instant);
  }

  /** Accepts any RFC 3339 offset, not only {@code Z}; returns null when the text is not a timestamp. */
  public static Instant parseTimestamp(String text) {
    try {
      return OffsetDateTime.parse(text, DateTimeFormatter.ISO_OFFSET_DATE_TIME).toInstant();
    } catch (DateTimeParseException e) {
      return null;
    }
  }
}
