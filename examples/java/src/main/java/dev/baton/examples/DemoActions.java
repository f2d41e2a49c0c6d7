package dev.baton.examples;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.baton.worker.NonRetryableError;
import dev.baton.worker.Worker;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The demo actions the example workflows use (names are part of those workflows; keep them). */
public final class DemoActions {
  private static final ObjectMapper JSON = new ObjectMapper();

  private DemoActions() {}

  public static void register(Worker worker) {
    worker.register("java.score", DemoActions::score);
    worker.register("java.sum", DemoActions::sum);
  }

  /**
   * {@code java.score}: any JSON in, {@code {"score": n, "scored_by": "java", "input": <input>}} out, where
   * n is the length in Unicode code points of the input's compact JSON text (no spaces, non-ASCII kept).
   */
  public static Map<String, Object> score(Object input) throws JsonProcessingException {
    String text = JSON.writeValueAsString(input);
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("score", text.codePointCount(0, text.length()));
    out.put("scored_by", "java");
    out.put("input", input);
    return out;
  }

  /**
   * {@code java.sum}: a list of numbers, or a map whose values are numbers or maps with a numeric
   * {@code "n"} (a fan-in such as {@code {"py": {"n": 1}, "node": {"n": 2}}}), summed to one number.
   * An integer when every term is one, else a double. Anything else is a NonRetryableError: retrying the
   * same input cannot help.
   */
  public static Number sum(Object input) {
    Collection<?> terms;
    if (input instanceof List<?> list) {
      terms = list;
    } else if (input instanceof Map<?, ?> map) {
      terms = map.values().stream().map(v -> v instanceof Map<?, ?> m ? m.get("n") : v).toList();
    } else {
      throw new NonRetryableError("java.sum expects a list of numbers or a map of numbers, got " + input);
    }
    long whole = 0;
    double total = 0;
    boolean integral = true;
    for (Object term : terms) {
      if (!(term instanceof Number number)) {
        throw new NonRetryableError("java.sum: not a number: " + term);
      }
      integral &= term instanceof Integer || term instanceof Long;
      whole += number.longValue();
      total += number.doubleValue();
    }
    return integral ? (Number) whole : (Number) total;
  }
}
