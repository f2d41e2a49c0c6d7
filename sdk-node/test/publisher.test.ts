// R2.6: the publisher coalesces what is published in one event-loop turn into one produce request,
// keeps a single request in flight, and resolves each publish only once its request was acknowledged.
// A scripted producer stands in for Kafka here; every other suite runs the publisher on the real one.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { BatchingPublisher, type OutgoingMessage } from '../src/_publisher.js'

interface Call { messages: OutgoingMessage[], ack: () => void, fail: (err: unknown) => void }

function scriptedProducer (): { producer: ConstructorParameters<typeof BatchingPublisher>[0], calls: Call[], inFlight: () => number, maxInFlight: () => number } {
  const calls: Call[] = []
  let inFlight = 0
  let maxInFlight = 0
  const producer = {
    send: async ({ messages }: { messages: OutgoingMessage[] }) => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      try {
        await new Promise<void>((resolve, reject) => calls.push({ messages, ack: resolve, fail: reject }))
      } finally {
        inFlight--
      }
      return {}
    }
  }
  return { producer: producer as unknown as ConstructorParameters<typeof BatchingPublisher>[0], calls, inFlight: () => inFlight, maxInFlight: () => maxInFlight }
}

function message (i: number): OutgoingMessage {
  return { topic: 'results', key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`), headers: new Map() }
}

test('messages published in one turn leave in one request, acknowledged together', async () => {
  const { producer, calls } = scriptedProducer()
  const publisher = new BatchingPublisher(producer)
  const acked: number[] = []
  const sends = [0, 1, 2, 3, 4].map(async (i) => { await publisher.publish(message(i)); acked.push(i) })
  assert.equal(calls.length, 0, 'nothing leaves before the turn ends')
  await nextTurn()
  assert.equal(calls.length, 1)
  assert.deepEqual(calls[0]?.messages.map((m) => m.value?.toString()), ['v0', 'v1', 'v2', 'v3', 'v4'])
  await nextTurn()
  assert.deepEqual(acked, [], 'no publish resolves before Kafka acknowledged it')
  calls[0]?.ack()
  await Promise.all(sends)
  assert.deepEqual(acked, [0, 1, 2, 3, 4])
})

test('one request in flight: what arrives meanwhile leaves in the next one, in order; a failure rejects only its batch', async () => {
  const { producer, calls, maxInFlight } = scriptedProducer()
  const publisher = new BatchingPublisher(producer)
  const first = publisher.publish(message(0))
  await nextTurn()
  assert.equal(calls.length, 1)
  const later = [1, 2].map(async (i) => await publisher.publish(message(i)))
  await nextTurn()
  assert.equal(calls.length, 1, 'waits for the request in flight')
  calls[0]?.fail(new Error('broker gone'))
  await assert.rejects(first, /broker gone/)
  await nextTurn()
  assert.equal(calls.length, 2)
  assert.deepEqual(calls[1]?.messages.map((m) => m.value?.toString()), ['v1', 'v2'])
  calls[1]?.ack()
  await Promise.all(later)
  assert.equal(maxInFlight(), 1)
  // Idle again: the next message is scheduled for the end of its own turn.
  const last = publisher.publish(message(3))
  await nextTurn()
  assert.equal(calls.length, 3)
  calls[2]?.ack()
  await last
})
