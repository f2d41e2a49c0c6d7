package dev.baton.worker.internal;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Headers;

/**
 * Builds the DLT record of an undecodable job: the original bytes unchanged, with Spring Kafka's
 * {@code kafka_dlt-*} headers so existing DLT tooling can read why it is there.
 */
final class DeadLetters {
  private DeadLetters() {}

  static ProducerRecord<byte[], byte[]> undecodable(ConsumerRecord<byte[], byte[]> record, String topic,
      String groupId, String reason) {
    ProducerRecord<byte[], byte[]> dead = new ProducerRecord<>(topic, record.key(), record.value());
    Headers headers = dead.headers();
    headers.add("kafka_dlt-original-topic", utf8(record.topic()));
    headers.add("kafka_dlt-original-partition", ByteBuffer.allocate(4).putInt(record.partition()).array());
    headers.add("kafka_dlt-original-offset", ByteBuffer.allocate(8).putLong(record.offset()).array());
    headers.add("kafka_dlt-original-timestamp", ByteBuffer.allocate(8).putLong(record.timestamp()).array());
    headers.add("kafka_dlt-original-consumer-group", utf8(groupId));
    headers.add("kafka_dlt-exception-fqcn", utf8("Undecodable"));
    headers.add("kafka_dlt-exception-message", utf8(reason));
    headers.add("kafka_dlt-exception-stacktrace", new byte[0]);
    headers.add("baton-dlt-reason", utf8("undecodable"));
    String jobId = Job.peekJobId(record.value());
    if (jobId != null) {
      headers.add("baton-job-id", utf8(jobId));
    }
    return dead;
  }

  /**
   * The same dead letter without its value, for a job record too large for the DLT topic: the headers
   * still say where the original is (topic, partition, offset) and why it was dropped here.
   */
  static ProducerRecord<byte[], byte[]> withoutValue(ProducerRecord<byte[], byte[]> dead, Exception why) {
    ProducerRecord<byte[], byte[]> copy = new ProducerRecord<>(dead.topic(), dead.key(), null);
    dead.headers().forEach(h -> {
      if (!h.key().equals("kafka_dlt-exception-message")) {
        copy.headers().add(h);
      }
    });
    copy.headers().add("baton-dlt-value-dropped", utf8("too large for the dead-letter topic"));
    int size = dead.value() == null ? 0 : dead.value().length;
    String original = new String(dead.headers().lastHeader("kafka_dlt-exception-message").value(),
        StandardCharsets.UTF_8);
    copy.headers().add("kafka_dlt-exception-message", utf8(Bounds.message(original + "; the original value of "
        + size + " bytes was refused by the DLT topic (" + Failure.describe(why) + ") and is left out")));
    return copy;
  }

  private static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }
}
