// The one way tests run the real process (`node src/server.ts`): a child with a watchdog preloaded (it
// dies with the test process and after a deadline), its output kept, its exit awaited. The load
// suites start it against the FakeAzure and wait until it is ready; test/server.test.ts drives it raw.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import net from 'node:net'
import { fileURLToPath } from 'node:url'

export const SERVER = fileURLToPath(new URL('../../src/server.ts', import.meta.url))
const WATCHDOG = fileURLToPath(new URL('./watchdog.ts', import.meta.url))

/**
 * Limits the tests are not about: every request comes from one address, so the per-caller budgets
 * and slots would get in the way (the limits have their own tests, which set them).
 */
export const UNLIMITED_CALLER_ENV = {
  RATE_LIMIT_PER_MINUTE: '0',
  GRAPHQL_RATE_LIMIT_PER_MINUTE: '0',
  VISION_MAX_CONCURRENCY_PER_CALLER: '1024'
}

export interface ServerProcess {
  child: ChildProcess
  pid: number
  port: number
  origin: string
  /** The child's stdout and stderr (the last 2 MB). */
  output: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** A port free right now on 127.0.0.1. */
export async function freePort (): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/** Spawns the server on a free loopback port with `env` (and nothing of this process's environment but PATH). */
export async function spawnServer (env: Record<string, string>, { maxLifetimeMs = 200_000 } = {}): Promise<ServerProcess> {
  const port = await freePort()
  // Its own history database unless the test shares one (DATA_DIR or DATABASE_URL in env); removed when this process exits.
  const dataDir = mkdtempSync(join(tmpdir(), 'agrivision-server-data-'))
  process.once('exit', () => { rmSync(dataDir, { recursive: true, force: true }) })
  const child = spawn(process.execPath, ['--import', WATCHDOG, SERVER], {
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      DATA_DIR: dataDir,
      // The suites send the same photo again and expect the model to be asked; the result cache has its own tests.
      RESULT_CACHE_TTL_S: '0',
      ...UNLIMITED_CALLER_ENV,
      TEST_MAX_LIFETIME_MS: String(maxLifetimeMs),
      ...env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  const onData = (chunk: Buffer): void => {
    output += chunk.toString()
    if (output.length > 4_000_000) output = output.slice(-2_000_000)
  }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  // Belt and braces besides the watchdog: this process kills it when it exits normally.
  const killOnExit = (): void => { child.kill('SIGKILL') }
  process.once('exit', killOnExit)
  exited.finally(() => process.off('exit', killOnExit))
  return { child, pid: child.pid as number, port, origin: `http://127.0.0.1:${port}`, output: () => output, exited }
}

/** SIGKILL unless already gone; resolves once it has exited (bounded). */
export async function stopServer (server: ServerProcess): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL')
  await Promise.race([server.exited, new Promise(resolve => setTimeout(resolve, 5000))])
}
