package dev.baton;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * A local HTTP server for the client's wire behaviour (pure logic: statuses, bodies, headers, paging,
 * keep-alive, timeouts) where a real orchestrator cannot be made to answer the case. It answers each
 * request with the next queued {@link Answer} (else {@code 200 {}}) and records what it received.
 */
final class StubApi implements AutoCloseable {
  /** An answer, sent after {@code delay} (or when the stub closes, whichever comes first). */
  record Answer(int status, String contentType, String body, Duration delay) {
    static Answer json(int status, String body) {
      return new Answer(status, "application/json", body, Duration.ZERO);
    }

    /** A server that never replies in time. */
    static Answer hang() {
      return new Answer(200, "application/json", "{}", Duration.ofHours(1));
    }

    Answer after(Duration delay) {
      return new Answer(status, contentType, body, delay);
    }
  }

  /** What one request carried; {@code remotePort} tells connections apart. */
  record Received(String method, String uri, Map<String, List<String>> headers, String body, int remotePort) {
    /** The first value of a header, whatever the case of its name. */
    String header(String name) {
      return headers.entrySet().stream().filter(e -> e.getKey().equalsIgnoreCase(name))
          .map(e -> e.getValue().get(0)).findFirst().orElse(null);
    }
  }

  final List<Received> received = new CopyOnWriteArrayList<>();
  private final ConcurrentLinkedQueue<Answer> answers = new ConcurrentLinkedQueue<>();
  private final CountDownLatch closed = new CountDownLatch(1);
  private final ExecutorService executor = Executors.newCachedThreadPool();
  private final HttpServer server;

  StubApi() throws IOException {
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.createContext("/", this::handle);
    server.setExecutor(executor);
    server.start();
  }

  String url() {
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  StubApi answer(Answer... next) {
    answers.addAll(List.of(next));
    return this;
  }

  private void handle(HttpExchange exchange) throws IOException {
    try (exchange) {
      String body = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
      received.add(new Received(exchange.getRequestMethod(), exchange.getRequestURI().getRawPath()
          + (exchange.getRequestURI().getRawQuery() == null ? "" : "?" + exchange.getRequestURI().getRawQuery()),
          Map.copyOf(exchange.getRequestHeaders()), body, exchange.getRemoteAddress().getPort()));
      Answer answer = answers.poll();
      answer = answer == null ? Answer.json(200, "{}") : answer;
      closed.await(answer.delay().toMillis(), TimeUnit.MILLISECONDS);
      byte[] bytes = answer.body().getBytes(StandardCharsets.UTF_8);
      exchange.getResponseHeaders().add("Content-Type", answer.contentType());
      exchange.sendResponseHeaders(answer.status(), bytes.length == 0 ? -1 : bytes.length);
      exchange.getResponseBody().write(bytes);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    closed.countDown();
    server.stop(0);
    executor.shutdownNow();
  }
}
