package dev.baton.worker.internal;

import org.apache.kafka.common.TopicPartition;

/**
 * What other threads tell the consumer thread, which alone may touch the KafkaConsumer: a handler slot
 * was freed, or a job is finished (what replaces it, its result or dead letter, was acknowledged by Kafka).
 */
record Event(Kind kind, TopicPartition partition, long offset) {
  enum Kind { SLOT_FREED, ACKED }

  static final Event SLOT_FREED = new Event(Kind.SLOT_FREED, null, -1);
}
