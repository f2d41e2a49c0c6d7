package dev.baton.worker;

/** The SDK version sent in results and worker heartbeats. */
public final class Version {
  public static final String SDK_VERSION = "0.1.0";

  private Version() {}
}
