/**
 * A private single-node Kafka for the outage test, on free ports and a temp data dir, started the way
 * infra/stack.sh starts the shared one (same server.properties.in, same jars). Stopping it never
 * touches the shared broker. The jars come from $BATON_KAFKA_LIB, else the main checkout's stack dir.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection, createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { eventually, REPO_ROOT } from './helpers.js'

export function kafkaLib (): string | undefined {
  if (process.env.BATON_KAFKA_LIB !== undefined) return process.env.BATON_KAFKA_LIB
  const root = fileURLToPath(REPO_ROOT)
  // A git worktree has no stack of its own: the jars live in the main checkout's .stack.
  const common = execFileSync('git', ['-C', root, 'rev-parse', '--path-format=absolute', '--git-common-dir'], { encoding: 'utf8' }).trim()
  const lib = join(process.env.BATON_STACK_DIR ?? join(dirname(common), '.stack'), 'kafka-lib')
  return existsSync(lib) ? lib : undefined
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

async function portOpen (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => { socket.end(); resolve(true) })
    socket.on('error', () => resolve(false))
  })
}

export class PrivateBroker {
  readonly dir = mkdtempSync(join(tmpdir(), 'baton-node-kafka-'))
  #proc: ChildProcess | undefined
  port = 0

  constructor (readonly lib: string) {}

  get bootstrap (): string {
    return `127.0.0.1:${this.port}`
  }

  #java (args: string[]): string[] {
    return ['-Xms64m', '-Xmx256m', '-XX:+UseSerialGC', '-Djava.awt.headless=true', `-Dlog4j2.configurationFile=${fileURLToPath(new URL('infra/log4j2.properties', REPO_ROOT))}`,
      `-Dbaton.kafka.log=${join(this.dir, 'kafka.log')}`, '-cp', `${this.lib}/*`, ...args]
  }

  /** First start formats the storage; later starts reuse it (same ports, same data). */
  async start (): Promise<void> {
    const props = join(this.dir, 'server.properties')
    if (this.port === 0) {
      this.port = await freePort()
      const template = readFileSync(new URL('infra/server.properties.in', REPO_ROOT), 'utf8')
      writeFileSync(props, template.replaceAll('@KAFKA_PORT@', String(this.port))
        .replaceAll('@CONTROLLER_PORT@', String(await freePort())).replaceAll('@DATA_DIR@', join(this.dir, 'data')))
      const id = execFileSync('java', this.#java(['kafka.tools.StorageTool', 'random-uuid']), { encoding: 'utf8' }).trim()
      execFileSync('java', this.#java(['kafka.tools.StorageTool', 'format', '--standalone', '-t', id, '-c', props]), { stdio: 'ignore' })
    }
    this.#proc = spawn('java', this.#java(['kafka.Kafka', props]), { stdio: 'ignore' })
    await eventually(async () => await portOpen(this.port), 90_000, 'private Kafka listening')
  }

  /** SIGKILL: the broker vanishes mid-request, as in a crash or a network cut. */
  async kill (): Promise<void> {
    const proc = this.#proc
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise((resolve) => proc.once('exit', resolve))
    proc.kill('SIGKILL')
    await exited
  }

  async close (): Promise<void> {
    await this.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
