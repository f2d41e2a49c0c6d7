// R2.8: the worker's baton.handle spans, against the real Kafka, exported in memory.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { NonRetryableError, RetryLater, Worker, type WorkerOptions } from '../src/index.js'
import { parseTraceparent, traceHeaders } from '../src/_tracing.js'
import { BOOTSTRAP, KafkaScope, headerMap, makeJob, memoryLogger, type Record_ } from './helpers.js'

// What every OTel Node application does: without it the active span is lost across awaits.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c'
const DISPATCH_SPAN_ID = 'b7ad6b7169203331'
const TRACEPARENT = `00-${TRACE_ID}-${DISPATCH_SPAN_ID}-01`

function traced (t: TestContext, k: KafkaScope, options: WorkerOptions = {}): { w: Worker, exporter: InMemorySpanExporter, provider: BasicTracerProvider, logger: ReturnType<typeof memoryLogger> } {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const logger = memoryLogger()
  const w = new Worker({ bootstrapServers: BOOTSTRAP, groupId: k.group, topicPrefix: k.prefix, logger, handleSignals: false, tracerProvider: provider, ...options })
  t.after(async () => { await w.stop(1000); await provider.shutdown() })
  return { w, exporter, provider, logger }
}

function handleSpans (exporter: InMemorySpanExporter): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.name.startsWith('baton.handle '))
}

function resultTraceparent (record: Record_): string | undefined {
  return headerMap(record).get('traceparent')?.toString('utf8')
}

test('the handle span is a CONSUMER child of the job traceparent, with the contract attributes', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.trace.ok'])
  const job = makeJob('trace.ok', { n: 1 }, { attempt: 2, step: 'enrich' })
  await k.produce('jobs.trace.ok', [job], { traceparent: TRACEPARENT, tracestate: 'vendor=abc,other=1' })
  const { w, exporter, provider, logger } = traced(t, k)
  let userSpanId = ''
  w.register('trace.ok', async (payload: { n: number }, ctx) => {
    // A user's own span, made with the active context after an await: it must nest under baton.handle.
    await new Promise((resolve) => setTimeout(resolve, 5))
    const span = provider.getTracer('user').startSpan('user.work')
    userSpanId = span.spanContext().spanId
    span.end()
    ctx.logger.info('inside the handler')
    return payload.n
  })
  assert.equal((await w.runUntilIdle({ timeoutMs: 20_000 })).completed, 1)

  const [handle] = handleSpans(exporter)
  assert.ok(handle !== undefined)
  assert.equal(handle.name, 'baton.handle trace.ok')
  assert.equal(handle.kind, SpanKind.CONSUMER)
  assert.equal(handle.spanContext().traceId, TRACE_ID)
  assert.equal(handle.parentSpanContext?.spanId, DISPATCH_SPAN_ID)
  assert.equal(handle.status.code, SpanStatusCode.UNSET)
  assert.deepEqual(handle.attributes, {
    'baton.run_id': job.run_id,
    'baton.workflow_id': 'wf-test',
    'baton.step': 'enrich',
    'baton.attempt': 2,
    'baton.action': 'trace.ok',
    'baton.job_id': job.job_id,
    'messaging.system': 'kafka',
    'messaging.destination.name': k.topic('jobs.trace.ok'),
    'baton.worker_id': w.id,
    'baton.sdk.language': 'node',
    'baton.sdk.version': '0.1.0'
  })
  assert.deepEqual(handle.instrumentationScope, { name: 'baton', version: '0.1.0', schemaUrl: undefined })

  const user = exporter.getFinishedSpans().find((s) => s.name === 'user.work')
  assert.ok(user !== undefined)
  assert.equal(user.spanContext().spanId, userSpanId)
  assert.equal(user.parentSpanContext?.spanId, handle.spanContext().spanId, 'user span nests under baton.handle')
  assert.equal(user.spanContext().traceId, TRACE_ID)

  const [record] = await k.read('results', 1)
  assert.ok(record !== undefined)
  assert.equal(resultTraceparent(record), `00-${TRACE_ID}-${handle.spanContext().spanId}-01`)
  assert.equal(headerMap(record).get('tracestate')?.toString('utf8'), 'vendor=abc,other=1')

  const line = logger.lines.find((l) => l.message === 'inside the handler')
  assert.deepEqual(line?.fields, { trace_id: TRACE_ID, span_id: handle.spanContext().spanId, job_id: job.job_id, action: 'trace.ok' })
})

test('a failing handler makes an ERROR span with the exception and baton.error_type; RetryLater stays UNSET', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.trace.fail', 'jobs.trace.later', 'jobs.trace.thrown'])
  const fail = makeJob('trace.fail', null)
  const later = makeJob('trace.later', null)
  const thrown = makeJob('trace.thrown', null)
  await k.produce('jobs.trace.fail', [fail], { traceparent: TRACEPARENT })
  await k.produce('jobs.trace.later', [later], { traceparent: TRACEPARENT })
  await k.produce('jobs.trace.thrown', [thrown])
  const { w, exporter, logger } = traced(t, k)
  w.register('trace.fail', () => { throw new NonRetryableError('card declined') })
  w.register('trace.later', () => { throw new RetryLater(5000) })
  // A non-Error thrown value: recorded from the result's sanitised error, never a crash.
  w.register('trace.thrown', () => { throw 'plain string' })
  assert.equal((await w.runUntilIdle({ timeoutMs: 20_000 })).failed, 3)

  const byAction = new Map(handleSpans(exporter).map((s) => [s.attributes['baton.action'], s]))
  const failed = byAction.get('trace.fail')
  assert.ok(failed !== undefined)
  assert.deepEqual(failed.status, { code: SpanStatusCode.ERROR, message: 'card declined' })
  assert.equal(failed.attributes['baton.error_type'], 'NonRetryableError')
  const [event] = failed.events
  assert.equal(event?.name, 'exception')
  assert.equal(event?.attributes?.['exception.type'], 'NonRetryableError')
  assert.equal(event?.attributes?.['exception.message'], 'card declined')
  assert.match(String(event?.attributes?.['exception.stacktrace']), /card declined/)
  const results = await k.readJson('results', 3)
  assert.equal(results.find((r) => r.job_id === fail.job_id)?.error?.type, 'NonRetryableError', 'same type as the result')

  const retry = byAction.get('trace.later')
  assert.ok(retry !== undefined)
  assert.equal(retry.status.code, SpanStatusCode.UNSET)
  assert.equal(retry.attributes['baton.outcome'], 'retry_later')
  assert.equal(retry.events.length, 0)

  const plain = byAction.get('trace.thrown')
  assert.ok(plain !== undefined)
  assert.equal(plain.parentSpanContext, undefined, 'no traceparent: a root span')
  assert.deepEqual(plain.status, { code: SpanStatusCode.ERROR, message: 'plain string' })
  assert.equal(plain.attributes['baton.error_type'], 'Error')
  // The runner's own record about the job carries the ids too.
  const debug = logger.lines.find((l) => l.message === 'job failed' && (l.fields as { job_id?: string }).job_id === fail.job_id)
  assert.equal((debug?.fields as { trace_id?: string } | undefined)?.trace_id, TRACE_ID)
})

const MALFORMED: Array<[string, Buffer]> = [
  ['garbage', Buffer.from('not a traceparent')],
  ['NUL byte', Buffer.from(`00-${TRACE_ID}-${DISPATCH_SPAN_ID}-0\u0000`)],
  ['too long for version 00', Buffer.from(`${TRACEPARENT}-extra`)],
  ['too short', Buffer.from(`00-${TRACE_ID.slice(1)}-${DISPATCH_SPAN_ID}-01`)],
  ['all-zero trace id', Buffer.from(`00-${'0'.repeat(32)}-${DISPATCH_SPAN_ID}-01`)],
  ['all-zero span id', Buffer.from(`00-${TRACE_ID}-${'0'.repeat(16)}-01`)],
  ['uppercase hex', Buffer.from(TRACEPARENT.toUpperCase())],
  ['version ff', Buffer.from(`ff-${TRACE_ID}-${DISPATCH_SPAN_ID}-01`)],
  ['non-UTF-8 bytes', Buffer.concat([Buffer.from('00-'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(TRACEPARENT.slice(6))])],
  ['empty', Buffer.alloc(0)],
  ['huge', Buffer.alloc(100_000, 0x61)]
]

test('parseTraceparent ignores every malformed value and keeps valid ones', () => {
  for (const [what, bytes] of MALFORMED) assert.equal(parseTraceparent(bytes, undefined), undefined, what)
  const parsed = parseTraceparent(Buffer.from(TRACEPARENT), Buffer.from('a=1,b=2'))
  assert.deepEqual({ ...parsed, traceState: parsed?.traceState?.serialize() }, { traceId: TRACE_ID, spanId: DISPATCH_SPAN_ID, traceFlags: 1, isRemote: true, traceState: 'a=1,b=2' })
  // A later version may add fields; an unsampled flag stays unsampled.
  assert.equal(parseTraceparent(Buffer.from(`01-${TRACE_ID}-${DISPATCH_SPAN_ID}-00-more`), undefined)?.traceFlags, 0)
  // A tracestate that is not ASCII is dropped, the traceparent kept.
  assert.equal(parseTraceparent(Buffer.from(TRACEPARENT), Buffer.from([0x61, 0x3d, 0xff]))?.traceState, undefined)
  assert.ok(parsed !== undefined)
  assert.deepEqual(traceHeaders(parsed), { traceparent: TRACEPARENT, tracestate: 'a=1,b=2' })
  assert.deepEqual(traceHeaders(trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 }).spanContext()), {})
})

test('a job with a malformed traceparent still runs, under a new root span', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.trace.bad'])
  const jobs = MALFORMED.map(() => makeJob('trace.bad', 'x'))
  await k.producer.send({
    messages: jobs.map((job, i) => ({
      topic: k.topic('jobs.trace.bad'),
      key: Buffer.from(job.run_id),
      value: Buffer.from(JSON.stringify(job)),
      headers: new Map([[Buffer.from('traceparent'), MALFORMED[i]?.[1] ?? Buffer.alloc(0)], [Buffer.from('tracestate'), Buffer.from([0, 0xff])]])
    }))
  })
  const { w, exporter } = traced(t, k, { concurrency: 4 })
  w.register('trace.bad', (payload: string) => payload)
  assert.equal((await w.runUntilIdle({ timeoutMs: 30_000 })).completed, MALFORMED.length)

  const spans = new Map(handleSpans(exporter).map((s) => [s.attributes['baton.job_id'], s]))
  for (const record of await k.read('results', MALFORMED.length)) {
    const jobId = headerMap(record).get('baton-job-id')?.toString('utf8')
    const span = spans.get(jobId)
    const what = MALFORMED[jobs.findIndex((j) => j.job_id === jobId)]?.[0]
    assert.ok(span !== undefined, `span of ${what}`)
    assert.equal(span.parentSpanContext, undefined, `${what}: a root span`)
    assert.notEqual(span.spanContext().traceId, TRACE_ID)
    assert.equal(resultTraceparent(record), `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`, what)
    assert.equal(headerMap(record).has('tracestate'), false, what)
  }
})

test('with no tracer provider the job traceparent is forwarded, and none is invented', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.trace.noop'])
  const withParent = makeJob('trace.noop', 1)
  const without = makeJob('trace.noop', 2)
  await k.produce('jobs.trace.noop', [withParent], { traceparent: TRACEPARENT })
  await k.produce('jobs.trace.noop', [without])
  const logger = memoryLogger()
  const w = new Worker({ bootstrapServers: BOOTSTRAP, groupId: k.group, topicPrefix: k.prefix, logger, handleSignals: false })
  t.after(async () => { await w.stop(1000) })
  const active: string[] = []
  w.register('trace.noop', (n: number) => {
    // No SDK: the active span is the non-recording carrier of the incoming context, so a user's spans would join it.
    active.push(trace.getActiveSpan()?.spanContext().spanId ?? 'none')
    return n
  })
  assert.equal((await w.runUntilIdle({ timeoutMs: 20_000 })).completed, 2)
  const records = await k.read('results', 2)
  const byJob = new Map(records.map((r) => [headerMap(r).get('baton-job-id')?.toString('utf8'), r]))
  const first = byJob.get(withParent.job_id)
  const second = byJob.get(without.job_id)
  assert.ok(first !== undefined && second !== undefined)
  assert.equal(resultTraceparent(first), TRACEPARENT)
  assert.equal(headerMap(second).has('traceparent'), false)
  assert.ok(active.includes(DISPATCH_SPAN_ID))
})

test('a tracer or tracerProvider option that is not one is a ConfigError', () => {
  assert.throws(() => new Worker({ tracer: {} as never, handleSignals: false }), { name: 'ConfigError', message: /tracer must be/ })
  assert.throws(() => new Worker({ tracerProvider: 42 as never, handleSignals: false }), { name: 'ConfigError', message: /tracerProvider must be/ })
})
