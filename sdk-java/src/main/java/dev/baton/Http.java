package dev.baton;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.NullNode;
import dev.baton.worker.Version;
import java.io.IOException;
import java.math.BigDecimal;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpRequest.BodyPublishers;
import java.net.http.HttpResponse;
import java.net.http.HttpResponse.BodyHandlers;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.StringJoiner;

/** One {@link HttpClient} (its connection pool) and the API's wire conventions: paths, JSON, errors. */
final class Http implements AutoCloseable {
  // Trailing tokens fail: a reply that is JSON followed by something else is not the API's.
  static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  /** {@code body} is JSON, already encoded (null: none); {@code serverWait} the server-side wait it asks for. */
  record Request(String method, String path, Map<String, String> query, byte[] body, String idempotencyKey,
      Duration serverWait) {
    static Request of(String method, String path) {
      return new Request(method, path, Map.of(), null, null, Duration.ZERO);
    }
  }

  /** A 2xx answer; {@code body} is {@link NullNode} when empty (204). */
  record Reply(int status, JsonNode body) {}

  private final HttpClient client;
  private final String baseUrl;
  private final String apiKey;
  private final Duration timeout;
  private volatile boolean closed;

  Http(String baseUrl, String apiKey, Duration timeout) {
    this.baseUrl = baseUrl;
    this.apiKey = apiKey;
    this.timeout = timeout;
    // HTTP/1.1: the API server speaks no HTTP/2, and the h2c upgrade attempt would cost every new connection.
    this.client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(timeout).build();
  }

  /** Sends the request; a 2xx answer is decoded, any other raises its {@link ApiError} subclass. */
  Reply send(Request request) {
    if (closed) {
      throw new IllegalStateException("the client is closed");
    }
    String where = request.method() + " " + baseUrl + request.path();
    HttpResponse<byte[]> response;
    try {
      response = client.send(build(request), BodyHandlers.ofByteArray());
    } catch (HttpTimeoutException e) {
      Duration waited = timeout.plus(request.serverWait());
      throw new ApiConnectionError(where + ": no answer within " + seconds(waited) + " s", e);
    } catch (IOException e) {
      throw new ApiConnectionError(where + ": cannot reach the Baton API (" + e + ")", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ApiConnectionError(where + ": interrupted", e);
    }
    return reply(response.statusCode(), response.body());
  }

  private HttpRequest build(Request request) {
    HttpRequest.Builder builder = HttpRequest.newBuilder(URI.create(baseUrl + request.path() + query(request)))
        // A long poll is answered when its wait ends: the timeout covers the wait on top.
        .timeout(timeout.plus(request.serverWait()))
        .header("Accept", "application/json")
        .header("User-Agent", "baton-java/" + Version.SDK_VERSION);
    if (apiKey != null) {
      builder.header("Authorization", "Bearer " + apiKey);
    }
    if (request.idempotencyKey() != null) {
      builder.header("Idempotency-Key", request.idempotencyKey());
    }
    if (request.body() == null) {
      return builder.method(request.method(), BodyPublishers.noBody()).build();
    }
    builder.header("Content-Type", "application/json");
    return builder.method(request.method(), BodyPublishers.ofByteArray(request.body())).build();
  }

  private static String query(Request request) {
    StringJoiner query = new StringJoiner("&", "?", "").setEmptyValue("");
    request.query().forEach((k, v) -> query.add(k + "=" + URLEncoder.encode(v, StandardCharsets.UTF_8)));
    return query.toString();
  }

  static Reply reply(int status, byte[] body) {
    if (status < 200 || status >= 300) {
      throw ApiErrors.of(status, body);
    }
    if (body.length == 0) {
      return new Reply(status, NullNode.getInstance());
    }
    try {
      return new Reply(status, JSON.readTree(body));
    } catch (IOException e) {
      throw new ApiError("the API answered with a body that is not JSON", status, null, null);
    }
  }

  /** The reply's body, which must be an object with {@code field}: anything else is not the Baton API. */
  static JsonNode expect(Reply reply, String field) {
    if (!reply.body().isObject() || !reply.body().has(field)) {
      throw new ApiError("the answer has no '" + field + "' field: is the URL a Baton API?", reply.status(), null,
          null);
    }
    return reply.body();
  }

  /** One path segment, escaped, so an id can never reach another route. */
  static String segment(String name, String value) {
    if (value == null || value.isEmpty()) {
      throw new IllegalArgumentException(name + " must be a non-empty string");
    }
    String escaped = URLEncoder.encode(value, StandardCharsets.UTF_8).replace("+", "%20");
    // URLEncoder keeps dots: "." or ".." would be read as a relative path.
    return escaped.chars().allMatch(c -> c == '.') ? escaped.replace(".", "%2E") : escaped;
  }

  /** A duration as decimal seconds with millisecond precision, as the API's {@code ?wait=} takes it. */
  static String seconds(Duration duration) {
    return BigDecimal.valueOf(duration.toMillis(), 3).stripTrailingZeros().toPlainString();
  }

  static byte[] json(Object value, String what) {
    try {
      return JSON.writeValueAsBytes(value);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException(what + " cannot be written as JSON: " + e.getOriginalMessage(), e);
    }
  }

  @Override
  public void close() {
    closed = true;
    // HttpClient is AutoCloseable from Java 21; on 17 its idle connections go when it is collected.
    if (client instanceof AutoCloseable closeable) {
      try {
        closeable.close();
      } catch (Exception ignored) {
        // Closing releases connections only; nothing is lost if it fails.
      }
    }
  }
}
