package dev.baton;

import java.time.Duration;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * Options of a {@link BatonClient}. An option left unset falls back to its {@code BATON_*} environment
 * variable, then to the default; {@link #build()} validates and throws {@link IllegalArgumentException}
 * naming the bad option.
 */
public final class BatonClientBuilder {
  static final String DEFAULT_URL = "http://127.0.0.1:8080";
  static final String ENV_URL = "BATON_API_URL";
  static final String ENV_API_KEY = "BATON_API_KEY";

  private static final Pattern URL = Pattern.compile("https?://[^\\s/?#]+(/[^\\s?#]*)?");
  // A header value: a newline or space would split or corrupt the request.
  private static final Pattern API_KEY = Pattern.compile("[\\x21-\\x7e]+");

  private String url;
  private String apiKey;
  private Duration timeout = Duration.ofSeconds(30);
  private Function<String, String> env = System::getenv;

  BatonClientBuilder() {}

  /** Base URL of the API; env {@code BATON_API_URL}, else {@code http://127.0.0.1:8080}. */
  public BatonClientBuilder url(String url) {
    this.url = url;
    return this;
  }

  /**
   * Bearer token sent as {@code Authorization: Bearer <key>}; env {@code BATON_API_KEY}. An explicit empty
   * string sends no token even when the variable is set.
   */
  public BatonClientBuilder apiKey(String apiKey) {
    this.apiKey = apiKey;
    return this;
  }

  /** Per-request timeout (connect and answer; default 30 s). A long poll waits this much longer than its wait. */
  public BatonClientBuilder timeout(Duration timeout) {
    this.timeout = timeout;
    return this;
  }

  /** Tests swap the environment to check the fallbacks without touching the real one. */
  BatonClientBuilder env(Function<String, String> env) {
    this.env = env;
    return this;
  }

  public BatonClient build() {
    String base = url != null ? url : fromEnv(ENV_URL);
    base = base == null || base.isEmpty() ? DEFAULT_URL : base;
    if (!URL.matcher(base).matches()) {
      throw new IllegalArgumentException("url must be an http:// or https:// URL");
    }
    String key = apiKey != null ? apiKey : fromEnv(ENV_API_KEY);
    if (key != null && !key.isEmpty() && !API_KEY.matcher(key).matches()) {
      throw new IllegalArgumentException("apiKey must be printable ASCII without spaces");
    }
    if (timeout == null || timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be a positive duration");
    }
    return new BatonClient(base.replaceAll("/+$", ""), key == null || key.isEmpty() ? null : key, timeout);
  }

  private String fromEnv(String name) {
    String value = env.apply(name);
    return value == null ? null : value.strip();
  }
}
