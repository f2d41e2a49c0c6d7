/**
 * Sends everything the worker produces, in batches that form naturally: what is published in one
 * event-loop turn leaves together at the end of that turn, and while one produce request is in
 * flight, new messages queue and leave together in the next one. Idle, a lone message waits one
 * turn (setImmediate); busy, one round trip carries many results.
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

/** How a send ended: acknowledged, refused for good as too large, or abandoned because the worker stopped. */
export type SendStatus = 'sent' | 'tooLarge' | 'stopped'

interface Pending {
  message: OutgoingMessage
  bytes: number
  /** Sent in a request of its own: a batch it was part of was refused as too large. */
  solo: boolean
  resolve: () => void
  reject: (err: unknown) => void
}

const MAX_BATCH = 500
// Kafka refuses a whole record batch over the topic's limit (1 MiB by default), so several results
// that fit one by one must not be refused together: batches stay well under it.
const MAX_BATCH_BYTES = 256 * 1024
const MAX_BACKOFF_MS = 5_000
const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE'])

export class BatchingPublisher {
  readonly #producer: Clients['producer']
  #queue: Pending[] = []
  #sending = false
  /** A drain is due at the end of this event-loop turn. */
  #scheduled = false

  constructor (producer: Clients['producer']) {
    this.#producer = producer
  }

  /** Resolves once Kafka acknowledged the message (acks=all). */
  async publish (message: OutgoingMessage): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#queue.push({ message, bytes: sizeOf(message), solo: false, resolve, reject })
      this.#schedule()
    })
  }

  // Idle, the first message waits for the end of this event-loop turn instead of leaving alone at
  // once: the results of the jobs that finish in the same turn (a fetched batch of quick handlers)
  // then share one produce request instead of one request plus a second for the rest (R2.6).
  #schedule (): void {
    if (this.#sending || this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      if (!this.#sending) this.#drain()
    })
  }

  /**
   * Publishes, retrying transient errors with bounded backoff until acknowledged or `giveUp()` says
   * stop (the job's offset then stays uncommitted, so it runs again elsewhere). A record Kafka
   * refuses as too large is not retried: the caller replaces it with one that fits.
   */
  async publishWithRetry (message: OutgoingMessage, giveUp: () => boolean, onRetry: (err: unknown, attempt: number) => void): Promise<SendStatus> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.publish(message)
        return 'sent'
      } catch (err: unknown) {
        if (isTooLarge(err)) return 'tooLarge'
        if (giveUp()) return 'stopped'
        onRetry(err, attempt)
        await sleep(Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(attempt, 16)), undefined, { ref: false })
        if (giveUp()) return 'stopped'
      }
    }
  }

  #drain (): void {
    const batch = this.#take()
    if (batch.length === 0) {
      this.#sending = false
      return
    }
    this.#sending = true
    this.#producer.send({ messages: batch.map((p) => p.message) }).then(
      () => { for (const p of batch) p.resolve() },
      (err: unknown) => this.#failed(batch, err)
    ).finally(() => this.#drain())
  }

  #failed (batch: Pending[], err: unknown): void {
    if (batch.length > 1 && isTooLarge(err)) {
      // Only Kafka knows which record (or their sum) was too large: retry each on its own, in order.
      this.#queue.unshift(...batch.map((p) => ({ ...p, solo: true })))
      return
    }
    for (const p of batch) p.reject(err)
  }

  #take (): Pending[] {
    const first = this.#queue[0]
    if (first === undefined) return []
    if (first.solo) return this.#queue.splice(0, 1)
    let count = 0
    let bytes = 0
    for (const p of this.#queue) {
      if (count === MAX_BATCH || p.solo || (count > 0 && bytes + p.bytes > MAX_BATCH_BYTES)) break
      count++
      bytes += p.bytes
    }
    return this.#queue.splice(0, count)
  }
}

/** True when Kafka refused the record (or its batch) as too large: retrying cannot help. */
export function isTooLarge (err: unknown): boolean {
  const seen = new Set<unknown>()
  const walk = (e: unknown): boolean => {
    if (typeof e !== 'object' || e === null || seen.has(e)) return false
    seen.add(e)
    const { apiId, errors } = e as { apiId?: unknown, errors?: unknown }
    if (typeof apiId === 'string' && TOO_LARGE.has(apiId)) return true
    return Array.isArray(errors) && errors.some(walk)
  }
  return walk(err)
}

function sizeOf (message: OutgoingMessage): number {
  let bytes = (message.key?.length ?? 0) + (message.value?.length ?? 0)
  for (const [k, v] of message.headers instanceof Map ? message.headers : []) bytes += k.length + v.length
  return bytes
}
