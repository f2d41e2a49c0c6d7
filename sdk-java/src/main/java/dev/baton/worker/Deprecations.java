package dev.baton.worker;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Old option names keep working; each says once per JVM which name replaces it. */
final class Deprecations {
  private static final Logger LOG = LoggerFactory.getLogger(Worker.class);
  private static final Set<String> WARNED = ConcurrentHashMap.newKeySet();

  private Deprecations() {}

  static void warnOnce(String old, String replacement) {
    if (WARNED.add(old)) {
      LOG.warn("{} is deprecated; use {}", old, replacement);
    }
  }
}
