/**
 * Sends everything the worker produces, in batches that form naturally under load: while one
 * produce request is in flight, new messages queue and leave together in the next one. Idle, a
 * batch is one message and leaves at once; busy, one round trip carries many results.
 *
 * One request in flight is also a correctness requirement: @platformatic/kafka 1.35 advances an
 * idempotent producer's sequence numbers only when a response arrives, so two concurrent send()
 * calls to one partition carry the same sequence and the broker acknowledges the second as a
 * duplicate without writing it (seen: 4 concurrent sends, 1 record). Never call producer.send
 * outside this class.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { MessageToProduce } from '@platformatic/kafka'
import type { Clients } from './_kafka.js'

export type OutgoingMessage = MessageToProduce<Buffer, Buffer, Buffer, Buffer>

interface Pending {
  message: OutgoingMessage
  resolve: () => void
  reject: (err: unknown) => void
}

const MAX_BATCH = 500

export class BatchingPublisher {
  readonly #producer: Clients['producer']
  #queue: Pending[] = []
  #sending = false

  constructor (producer: Clients['producer']) {
    this.#producer = producer
  }

  /** Resolves once Kafka acknowledged the message (acks=all). */
  async publish (message: OutgoingMessage): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#queue.push({ message, resolve, reject })
      if (!this.#sending) this.#drain()
    })
  }

  /**
   * Publishes, retrying with backoff until acknowledged or `giveUp()` says stop. The job's offset
   * stays uncommitted until then, so giving up only means the job runs again elsewhere.
   */
  async publishWithRetry (message: OutgoingMessage, giveUp: () => boolean, onRetry: (err: unknown, attempt: number) => void): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.publish(message)
        return true
      } catch (err: unknown) {
        if (giveUp()) return false
        onRetry(err, attempt)
        await sleep(Math.min(5_000, 100 * 2 ** attempt), undefined, { ref: false })
        if (giveUp()) return false
      }
    }
  }

  #drain (): void {
    const batch = this.#queue.splice(0, MAX_BATCH)
    if (batch.length === 0) {
      this.#sending = false
      return
    }
    this.#sending = true
    this.#producer.send({ messages: batch.map((p) => p.message) }).then(
      () => { for (const p of batch) p.resolve() },
      (err: unknown) => { for (const p of batch) p.reject(err) }
    ).finally(() => this.#drain())
  }
}
