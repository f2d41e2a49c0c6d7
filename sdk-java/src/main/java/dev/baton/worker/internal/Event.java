package dev.baton.worker.internal;

import org.apache.kafka.common.TopicPartition;

/**
 * What other threads tell the consumer thread, which alone may touch the KafkaConsumer: a handler slot
 * was freed, or a job is finished (its result acknowledged, or its send failed so it must not be committed).
 */
record Event(Kind kind, TopicPartition partition, long offset) {
  enum Kind { SLOT_FREED, ACKED, SEND_FAILED }

  static final Event SLOT_FREED = new Event(Kind.SLOT_FREED, null, -1);
}
