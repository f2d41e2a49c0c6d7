package dev.baton.worker;

/** Counts of what a worker did, as returned by {@link Worker#runUntilIdle}. */
public record RunReport(long completed, long failed, long deadLettered) {
  public long total() {
    return completed + failed + deadLettered;
  }
}
