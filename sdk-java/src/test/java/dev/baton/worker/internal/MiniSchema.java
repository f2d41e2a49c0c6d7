package dev.baton.worker.internal;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The subset of JSON Schema 2020-12 that {@code protocol/schemas} uses (type, const, enum, required,
 * properties, items, minLength, minimum, pattern, format date-time, oneOf, allOf, if/then). Enough to
 * check our encoders against the shared schemas without another test dependency.
 */
final class MiniSchema {
  private MiniSchema() {}

  static List<String> errors(JsonNode schema, JsonNode value) {
    List<String> errors = new ArrayList<>();
    check(schema, value, "$", errors);
    return errors;
  }

  private static void check(JsonNode schema, JsonNode value, String path, List<String> errors) {
    if (schema.has("type") && !typeMatches(schema.get("type"), value)) {
      errors.add(path + ": expected type " + schema.get("type") + ", got " + value);
      return;
    }
    if (schema.has("const") && !schema.get("const").equals(value)) {
      errors.add(path + ": expected " + schema.get("const"));
    }
    if (schema.has("enum") && !contains(schema.get("enum"), value)) {
      errors.add(path + ": " + value + " not in " + schema.get("enum"));
    }
    if (value.isTextual()) {
      checkString(schema, value.asText(), path, errors);
    }
    if (schema.has("minimum") && value.isNumber() && value.asDouble() < schema.get("minimum").asDouble()) {
      errors.add(path + ": below minimum");
    }
    if (value.isObject()) {
      schema.path("required").forEach(r -> {
        if (!value.has(r.asText())) {
          errors.add(path + ": missing " + r.asText());
        }
      });
      schema.path("properties").fields().forEachRemaining(p -> {
        if (value.has(p.getKey())) {
          check(p.getValue(), value.get(p.getKey()), path + "." + p.getKey(), errors);
        }
      });
    }
    if (value.isArray() && schema.has("items")) {
      for (int i = 0; i < value.size(); i++) {
        check(schema.get("items"), value.get(i), path + "[" + i + "]", errors);
      }
    }
    schema.path("allOf").forEach(s -> check(s, value, path, errors));
    if (schema.has("oneOf")) {
      long matching = 0;
      for (JsonNode option : schema.get("oneOf")) {
        matching += errors(option, value).isEmpty() ? 1 : 0;
      }
      if (matching != 1) {
        errors.add(path + ": matches " + matching + " oneOf options");
      }
    }
    if (schema.has("if") && errors(schema.get("if"), value).isEmpty() && schema.has("then")) {
      check(schema.get("then"), value, path, errors);
    }
  }

  private static void checkString(JsonNode schema, String text, String path, List<String> errors) {
    if (schema.has("minLength") && text.length() < schema.get("minLength").asInt()) {
      errors.add(path + ": shorter than minLength");
    }
    if (schema.has("pattern") && !Pattern.compile(schema.get("pattern").asText()).matcher(text).find()) {
      errors.add(path + ": does not match pattern");
    }
    if ("date-time".equals(schema.path("format").asText()) && Json.parseTimestamp(text) == null) {
      errors.add(path + ": not a date-time");
    }
  }

  private static boolean typeMatches(JsonNode type, JsonNode value) {
    if (type.isArray()) {
      for (JsonNode t : type) {
        if (typeMatches(t, value)) {
          return true;
        }
      }
      return false;
    }
    return switch (type.asText()) {
      case "object" -> value.isObject();
      case "array" -> value.isArray();
      case "string" -> value.isTextual();
      case "integer" -> value.isIntegralNumber();
      case "number" -> value.isNumber();
      case "boolean" -> value.isBoolean();
      case "null" -> value.isNull();
      default -> false;
    };
  }

  private static boolean contains(JsonNode options, JsonNode value) {
    for (JsonNode option : options) {
      if (option.equals(value)) {
        return true;
      }
    }
    return false;
  }
}
