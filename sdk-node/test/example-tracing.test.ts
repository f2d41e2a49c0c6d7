// R2.8: the example worker's tracing setup (examples/node/tracing.mjs), run for real: the worker in
// its own process with BATON_TRACE_DIR, a job with a traceparent through the real Kafka, then the
// OTLP/JSON lines it wrote on SIGTERM.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SpanStatusCode } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { BOOTSTRAP, KafkaScope, REPO_ROOT, eventually, headerMap, makeJob } from './helpers.js'

const WORKER = fileURLToPath(new URL('examples/node/worker.mjs', REPO_ROOT))
const tracing = await import(new URL('examples/node/tracing.mjs', REPO_ROOT).href) as {
  toExportRequest: (spans: unknown[]) => ExportRequest
  setupTracing: (env: Record<string, string>) => Promise<{ provider: BasicTracerProvider, shutdown: () => Promise<void> } | undefined>
}

interface KeyValue { key: string, value: Record<string, unknown> }
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  startTimeUnixNano: string
  endTimeUnixNano: string
  attributes: KeyValue[]
  events: Array<{ name: string, timeUnixNano: string, attributes: KeyValue[] }>
  status: { code: number, message?: string }
}
interface ExportRequest {
  resourceSpans: Array<{ resource: { attributes: KeyValue[] }, scopeSpans: Array<{ scope: { name: string, version?: string }, spans: OtlpSpan[] }> }>
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const DISPATCH_SPAN_ID = '00f067aa0ba902b7'

function attr (attributes: KeyValue[], key: string): Record<string, unknown> | undefined {
  return attributes.find((a) => a.key === key)?.value
}

test('the example worker writes its handle spans as OTLP/JSON lines to BATON_TRACE_DIR', async (t) => {
  const k = await KafkaScope.open(t)
  const dir = join(mkdtempSync(join(tmpdir(), 'baton-trace-')), 'traces') // created by the worker
  t.after(() => rmSync(join(dir, '..'), { recursive: true, force: true }))
  const proc = spawn(process.execPath, [WORKER], {
    env: { ...process.env, BATON_TRACE_DIR: dir, BATON_KAFKA_BOOTSTRAP_SERVERS: BOOTSTRAP, BATON_WORKER_GROUP: k.group, BATON_TOPIC_PREFIX: k.prefix, BATON_TOPIC_PARTITIONS: '1' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  t.after(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  await eventually(() => err.includes('worker started') || proc.exitCode !== null, 30_000, 'example worker started')
  assert.ok(err.includes('worker started'), err)

  const job = makeJob('node.enrich', { order: 7 }, { step: 'enrich' })
  await k.produce('jobs.node.enrich', [job], { traceparent: `00-${TRACE_ID}-${DISPATCH_SPAN_ID}-01` })
  const [record] = await k.read('results', 1)
  assert.ok(record !== undefined)
  proc.kill('SIGTERM')
  assert.equal(await exit, 0, err)

  const file = join(dir, `baton-worker-node-${proc.pid ?? 0}.jsonl`)
  assert.ok(existsSync(file), `no ${file}`)
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
  assert.ok(lines.length >= 1)
  const requests = lines.map((l) => JSON.parse(l) as ExportRequest)
  const [resourceSpans] = requests[0]?.resourceSpans ?? []
  assert.deepEqual(attr(resourceSpans?.resource.attributes ?? [], 'service.name'), { stringValue: 'baton-worker-node' })
  const scopeSpans = requests.flatMap((r) => r.resourceSpans.flatMap((rs) => rs.scopeSpans))
  const baton = scopeSpans.find((s) => s.scope.name === 'baton')
  assert.deepEqual(baton?.scope, { name: 'baton', version: '0.1.0' })
  const span = baton?.spans.find((s) => attr(s.attributes, 'baton.job_id')?.stringValue === job.job_id)
  assert.ok(span !== undefined)
  assert.equal(span.name, 'baton.handle node.enrich')
  assert.equal(span.kind, 5, 'OTLP SPAN_KIND_CONSUMER')
  assert.equal(span.traceId, TRACE_ID)
  assert.equal(span.parentSpanId, DISPATCH_SPAN_ID)
  assert.match(span.spanId, /^[0-9a-f]{16}$/)
  assert.match(span.startTimeUnixNano, /^\d{19}$/)
  assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano))
  assert.deepEqual(attr(span.attributes, 'baton.attempt'), { intValue: '1' })
  assert.deepEqual(attr(span.attributes, 'baton.step'), { stringValue: 'enrich' })
  assert.deepEqual(attr(span.attributes, 'baton.sdk.language'), { stringValue: 'node' })
  assert.deepEqual(span.status, { code: 0 })
  assert.equal(headerMap(record).get('traceparent')?.toString('utf8'), `00-${TRACE_ID}-${span.spanId}-01`, 'the result names the exported span')
})

test('the example exporter maps an ERROR span with events, and omits the parent of a root span', async () => {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const span = provider.getTracer('baton', '0.1.0').startSpan('baton.handle x', { kind: 4, attributes: { ratio: 0.5, ok: true, tags: ['a', 'b'] } })
  span.recordException({ name: 'Boom', message: 'it broke' })
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'it broke' })
  span.end()
  const request = tracing.toExportRequest(exporter.getFinishedSpans())
  const [out] = request.resourceSpans[0]?.scopeSpans[0]?.spans ?? []
  assert.ok(out !== undefined)
  assert.equal('parentSpanId' in out, false)
  assert.match(out.traceId, /^[0-9a-f]{32}$/)
  assert.deepEqual(out.status, { code: 2, message: 'it broke' })
  assert.equal(out.kind, 5)
  assert.deepEqual(attr(out.attributes, 'ratio'), { doubleValue: 0.5 })
  assert.deepEqual(attr(out.attributes, 'ok'), { boolValue: true })
  assert.deepEqual(attr(out.attributes, 'tags'), { arrayValue: { values: [{ stringValue: 'a' }, { stringValue: 'b' }] } })
  assert.equal(out.events[0]?.name, 'exception')
  assert.deepEqual(attr(out.events[0]?.attributes ?? [], 'exception.type'), { stringValue: 'Boom' })
  assert.match(out.events[0]?.timeUnixNano ?? '', /^\d+$/)
  await provider.shutdown()
})

test('with OTEL_EXPORTER_OTLP_ENDPOINT the example exports over OTLP/HTTP, flushed by shutdown; with nothing set it configures nothing', async (t) => {
  assert.equal(await tracing.setupTracing({}), undefined)
  const received: Array<{ url: string | undefined, type: string | undefined, body: string }> = []
  const server = createServer((req: IncomingMessage, res) => {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString('utf8') })
    req.on('end', () => {
      received.push({ url: req.url, type: req.headers['content-type'], body })
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => { server.close() })
  const { port } = server.address() as AddressInfo
  // The standard exporter reads its OTEL_EXPORTER_OTLP_* settings from the process environment itself.
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${port}`
  t.after(() => { delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT })
  const setup = await tracing.setupTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: process.env.OTEL_EXPORTER_OTLP_ENDPOINT })
  assert.ok(setup !== undefined)
  setup.provider.getTracer('baton', '0.1.0').startSpan('baton.handle otlp').end()
  await setup.shutdown()
  assert.equal(received.length, 1)
  assert.equal(received[0]?.url, '/v1/traces')
  assert.match(received[0]?.body ?? '', /baton\.handle otlp/)
  assert.match(received[0]?.body ?? '', /baton-worker-node/)
})
