/**
 * A real `baton server` for the client tests: the repository's `.venv/bin/baton` (located from this
 * file, as in CI) on a free port, with its own PostgreSQL schema, topic prefix, Redis prefix and
 * engine group. `stop()` ends it by pid, then drops its schema, Redis keys and topics.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Admin } from '@platformatic/kafka'
import { BOOTSTRAP, REPO_ROOT, eventually } from './helpers.js'

const VENV_BIN = fileURLToPath(new URL('.venv/bin/', REPO_ROOT))

function stackEnv (name: string): string {
  const value = process.env[name]
  // Fails (not skips) without the stack, like the Python suite: `eval "$(infra/stack.sh env)"` first.
  if (value === undefined || value === '') throw new Error(`${name} is not set: export the stack's env (infra/stack.sh env)`)
  return value
}

export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export class Orchestrator {
  readonly unique = randomUUID().replaceAll('-', '').slice(0, 10)
  readonly prefix = `t-${this.unique}-`
  readonly #dir = mkdtempSync(join(tmpdir(), 'baton-node-client-'))
  #proc: ChildProcess | undefined
  url = ''

  /** Starts `baton server --role <role>` and waits for `/health` 200 (fails if it exits first). */
  static async start (env: Record<string, string> = {}, role = 'all'): Promise<Orchestrator> {
    const server = new Orchestrator()
    await server.#start(env, role)
    return server
  }

  get log (): string {
    return readFileSync(join(this.#dir, 'server.log'), 'utf8').slice(-3000)
  }

  async #start (extra: Record<string, string>, role: string): Promise<void> {
    const port = await freePort()
    const out = openSync(join(this.#dir, 'server.log'), 'a')
    this.#proc = spawn(join(VENV_BIN, 'baton'), ['server', '--role', role, '--port', String(port)], {
      env: {
        ...process.env,
        BATON_DATABASE_URL: stackEnv('BATON_DATABASE_URL'),
        BATON_REDIS_URL: stackEnv('BATON_REDIS_URL'),
        BATON_KAFKA_BOOTSTRAP_SERVERS: BOOTSTRAP,
        BATON_DATABASE_SCHEMA: `t_${this.unique}`,
        BATON_TOPIC_PREFIX: this.prefix,
        BATON_REDIS_PREFIX: `t:${this.unique}:`,
        BATON_ENGINE_GROUP_ID: `${this.prefix}engine`,
        BATON_TOPIC_PARTITIONS: '2',
        BATON_API_KEYS: '',
        ...extra
      },
      stdio: ['ignore', out, out]
    })
    closeSync(out)
    this.url = `http://127.0.0.1:${port}`
    await eventually(async () => {
      if (this.#proc?.exitCode !== null) throw new Error(`baton server exited:\n${this.log}`)
      return await fetch(`${this.url}/health`).then((r) => r.status === 200, () => false)
    }, 60_000, 'a healthy baton server')
  }

  async stop (): Promise<void> {
    const proc = this.#proc
    if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
      await exited
      clearTimeout(timer)
    }
    this.#dropState()
    await this.#deleteTopics()
    rmSync(this.#dir, { recursive: true, force: true })
  }

  // psycopg and redis come with the orchestrator's .venv, so the tests need no database client of their own.
  #dropState (): void {
    const script = [
      'import os, psycopg, redis',
      'u = os.environ["UNIQUE"]',
      'with psycopg.connect(os.environ["BATON_DATABASE_URL"], autocommit=True) as c:',
      '    c.execute(f\'DROP SCHEMA IF EXISTS "t_{u}" CASCADE\')',
      'r = redis.Redis.from_url(os.environ["BATON_REDIS_URL"])',
      'for k in r.scan_iter(match=f"t:{u}:*"):',
      '    r.delete(k)'
    ].join('\n')
    execFileSync(join(VENV_BIN, 'python'), ['-c', script], { env: { ...process.env, UNIQUE: this.unique }, stdio: 'ignore', timeout: 30_000 })
  }

  async #deleteTopics (): Promise<void> {
    const admin = new Admin({ clientId: 'baton-test', bootstrapBrokers: [BOOTSTRAP] })
    try {
      const mine = (await admin.listTopics()).filter((t) => t.startsWith(this.prefix))
      if (mine.length > 0) await admin.deleteTopics({ topics: mine })
    } finally {
      await admin.close()
    }
  }
}
