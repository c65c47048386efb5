// Shared by the load and fault suites (test/load/*.load.ts): the real server process against the
// loopback FakeAzure, a bounded HTTP client, and readings of the child from /proc and /metrics.
// Every wait here has a deadline: a server that hangs fails the test instead of stalling it.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import http from 'node:http'
import type { FakeAzure } from '../support/fake-azure.ts'
import type { EncodedBody } from '../support/multipart.ts'
import { spawnServer, type ServerProcess } from '../support/server-process.ts'

export { freePort, stopServer, type ServerProcess } from '../support/server-process.ts'

export const DEPLOYMENT = 'gpt-4o-vision'

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Polls `check` every `intervalMs` until it is true or `timeoutMs` has passed; says which. */
export async function waitFor (check: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 25): Promise<boolean> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    if (await check()) return true
    if (performance.now() >= deadline) return false
    await sleep(intervalMs)
  }
}

/**
 * Spawns `node src/server.ts` (test/support/server-process.ts) against the fake Azure, and waits
 * until it is ready (first token in).
 */
export async function startServer (
  fake: FakeAzure, env: Record<string, string> = {}, { maxLifetimeMs = 200_000, readyTimeoutMs = 15_000 } = {}
): Promise<ServerProcess> {
  const server = await spawnServer({
    ...fake.identityEnv(),
    AZURE_OPENAI_ENDPOINT: fake.origin,
    AZURE_OPENAI_DEPLOYMENT: DEPLOYMENT,
    ...env
  }, { maxLifetimeMs })
  let exitedEarly = false
  server.exited.then(() => { exitedEarly = true })
  const ready = await waitFor(async () => exitedEarly || (await get(server.origin, '/health/ready', 1000)).status === 200, readyTimeoutMs, 50)
  if (!ready || exitedEarly) {
    server.child.kill('SIGKILL')
    throw new Error(`server not ready within ${readyTimeoutMs} ms (exited: ${exitedEarly}); output:\n${server.output().slice(-3000)}`)
  }
  return server
}

export interface Outcome {
  /** HTTP status, or null when no response came. */
  status: number | null
  /** 'OK' (data), the GraphQL error code, 'NO_CODE', or for no response 'TIMEOUT' / 'NET:<errno>'. */
  code: string
  ms: number
  startedAt: number
  body?: any
}

export interface PostOptions {
  agent?: http.Agent | false
  timeoutMs: number
}

/** POSTs an encoded GraphQL multipart body to /graphql; never throws, never waits past `timeoutMs`. */
export async function identify (origin: string, body: EncodedBody, { agent = false, timeoutMs }: PostOptions): Promise<Outcome> {
  const startedAt = performance.now()
  return await new Promise<Outcome>(resolve => {
    let settled = false
    const finish = (outcome: Omit<Outcome, 'ms' | 'startedAt'>): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve({ ...outcome, ms: performance.now() - startedAt, startedAt })
    }
    const req = http.request(`${origin}/graphql`, {
      method: 'POST',
      agent,
      headers: { ...body.headers, 'content-length': String(body.payload.length) }
    }, res => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', err => finish({ status: res.statusCode ?? null, code: `NET:${(err as NodeJS.ErrnoException).code ?? err.message}` }))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: any
        try { parsed = JSON.parse(text) } catch { parsed = undefined }
        const code = parsed?.data?.identifyVehicle ? 'OK' : (parsed?.errors?.[0]?.extensions?.code ?? 'NO_CODE')
        finish({ status: res.statusCode ?? null, code, body: parsed ?? text })
      })
    })
    const timer = setTimeout(() => {
      finish({ status: null, code: 'TIMEOUT' })
      req.destroy()
    }, timeoutMs)
    req.on('error', err => finish({ status: null, code: `NET:${(err as NodeJS.ErrnoException).code ?? err.message}` }))
    req.end(body.payload)
  })
}

/** A bounded GET on a fresh connection: status (or 0 with the error) and text. */
export async function get (origin: string, path: string, timeoutMs = 3000): Promise<{ status: number, text: string, error?: string }> {
  return await new Promise(resolve => {
    let settled = false
    const finish = (value: { status: number, text: string, error?: string }): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(value)
    }
    const req = http.get(`${origin}${path}`, { agent: false }, res => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', err => finish({ status: 0, text: '', error: (err as NodeJS.ErrnoException).code ?? err.message }))
      res.on('end', () => finish({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }))
    })
    const timer = setTimeout(() => { finish({ status: 0, text: '', error: 'TIMEOUT' }); req.destroy() }, timeoutMs)
    req.on('error', err => finish({ status: 0, text: '', error: (err as NodeJS.ErrnoException).code ?? err.message }))
  })
}

/** The server's /metrics as samples: `name{labels}` → value (labels as Prometheus prints them). */
export async function scrape (origin: string): Promise<Map<string, number>> {
  const { status, text } = await get(origin, '/metrics', 5000)
  if (status !== 200) throw new Error(`/metrics answered ${status}`)
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    samples.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return samples
}

/** Samples whose name is `name`, by their label string (e.g. `outcome="OK",backend="AZURE_OPENAI"`). */
export function byLabels (samples: Map<string, number>, name: string): Map<string, number> {
  const found = new Map<string, number>()
  for (const [key, value] of samples) {
    if (key === name) found.set('', value)
    else if (key.startsWith(`${name}{`)) found.set(key.slice(name.length + 1, -1), value)
  }
  return found
}

/** Resident set size of a process, in bytes (VmRSS from /proc/<pid>/status). */
export function rssBytes (pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!match) throw new Error(`no VmRSS for ${pid}`)
  return Number(match[1]) * 1024
}

/** Samples a process's RSS every `intervalMs` and keeps the peak. */
export class RssSampler {
  peak = 0
  #timer: NodeJS.Timeout
  readonly #pid: number

  constructor (pid: number, intervalMs = 200) {
    this.#pid = pid
    this.#timer = setInterval(() => { this.sample() }, intervalMs)
    this.#timer.unref()
  }

  sample (): number {
    try {
      const rss = rssBytes(this.#pid)
      this.peak = Math.max(this.peak, rss)
      return rss
    } catch {
      return 0 // gone
    }
  }

  stop (): void { clearInterval(this.#timer) }
}

export interface SocketCounts {
  /** Every socket fd the process holds. */
  total: number
  /** TCP connections accepted on `serverPort` (clients), listening socket excluded. */
  inbound: number
  /** TCP connections to `upstreamPort` (the fake Azure). */
  upstream: number
}

/**
 * The process's sockets, from its fd table joined with /proc/<pid>/net/tcp{,6} by inode:
 * which are client connections to the server and which go to the fake Azure.
 */
export function socketCounts (pid: number, serverPort: number, upstreamPort: number): SocketCounts {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string
    try { target = readlinkSync(`/proc/${pid}/fd/${fd}`) } catch { continue } // closed meanwhile
    const match = /^socket:\[(\d+)\]$/.exec(target)
    if (match) inodes.add(match[1] as string)
  }
  let inbound = 0
  let upstream = 0
  for (const table of ['tcp', 'tcp6']) {
    let text: string
    try { text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10 || !inodes.has(fields[9] as string)) continue
      const localPort = parseInt((fields[1] as string).split(':')[1] as string, 16)
      const remotePort = parseInt((fields[2] as string).split(':')[1] as string, 16)
      const state = fields[3]
      if (state === '0A') continue // LISTEN
      if (localPort === serverPort) inbound++
      else if (remotePort === upstreamPort) upstream++
    }
  }
  return { total: inodes.size, inbound, upstream }
}

/** Runs `task(i)` for i in [0, total) with at most `concurrency` at once. */
export async function runPool (total: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker))
}

/** A small seeded PRNG (mulberry32), so a run's fault pattern can be replayed. */
export function seededRandom (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export function countBy<T> (items: T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const item of items) {
    const k = key(item)
    counts[k] = (counts[k] ?? 0) + 1
  }
  return counts
}

export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`

/** The server's pino lines at `minLevel` or above (40 warn, 50 error, 60 fatal) and anything that is not JSON. */
export function logLines (output: string, minLevel = 50): string[] {
  const found: string[] = []
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue
    let level: unknown
    try { level = JSON.parse(line).level } catch { found.push(line); continue }
    if (typeof level === 'number' && level >= minLevel) found.push(line)
  }
  return found
}
