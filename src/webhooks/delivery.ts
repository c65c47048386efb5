// One delivery attempt: a POST to the address checked (pinned by a custom `lookup`, so the connection goes
// where the SSRF check said it may), no redirects (a 3xx fails), a whole-attempt timeout, and the response
// body read up to 64 KB and no further (then the connection is dropped). Never throws: the outcome says.
import http from 'node:http'
import https from 'node:https'
import type { LookupFunction } from 'node:net'
import type { CheckedUrl } from './ssrf.ts'

export const MAX_RESPONSE_BYTES = 64 * 1024
/** A Retry-After beyond this is taken as this (the schedule's longest wait). */
const MAX_RETRY_AFTER_MS = 24 * 3600 * 1000

export interface AttemptOutcome {
  /** The HTTP status; null when none came. */
  status: number | null
  durationMs: number
  /** Why it failed without a status (timeout, connection refused or reset, ...); null otherwise. Never a secret. */
  error: string | null
  /** The response body's first 64 KB (UTF-8, lossy). */
  response: string | null
  /** Retry-After of a 429 or 503, in milliseconds. */
  retryAfterMs: number | null
}

export interface AttemptRequest {
  target: CheckedUrl
  headers: Record<string, string>
  body: string
  timeoutMs: number
  signal?: AbortSignal
}

export async function attempt ({ target, headers, body, timeoutMs, signal }: AttemptRequest): Promise<AttemptOutcome> {
  const started = performance.now()
  const { url, host, address, addresses } = target
  // Whatever name the request would look up, it connects to an address checked: asked for all (Node's
  // happy-eyeballs fallback), every one that passed; else the first.
  const pinned: LookupFunction = (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all === true) {
      (callback as unknown as (err: null, all: Array<{ address: string, family: number }>) => void)(null, addresses)
    } else {
      callback(null, address.address, address.family)
    }
  }
  const client = url.protocol === 'https:' ? https : http
  return await new Promise<AttemptOutcome>(resolve => {
    let settled = false
    const chunks: Buffer[] = []
    let received = 0
    let status: number | null = null
    let retryAfterMs: number | null = null
    const finish = (error: string | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      req.destroy()
      resolve({
        status,
        durationMs: Math.round(performance.now() - started),
        error,
        response: chunks.length === 0 ? (status === null ? null : '') : Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BYTES).toString('utf8'),
        retryAfterMs
      })
    }
    const req = client.request({
      protocol: url.protocol,
      hostname: host,
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: 'POST',
      lookup: pinned,
      servername: isLiteral(host) ? undefined : host, // TLS: the name, not the address
      agent: false, // a fresh connection each time: no socket kept to an address that may since be refused
      headers: {
        ...headers,
        host: url.host,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': 'agrivision-webhooks/1'
      }
    }, res => {
      status = res.statusCode ?? null
      if (status === 429 || status === 503) retryAfterMs = parseRetryAfter(res.headers['retry-after'])
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        received += chunk.length
        if (received >= MAX_RESPONSE_BYTES) finish(null) // enough: the rest is not read
      })
      res.on('end', () => { finish(null) })
      res.on('error', () => { finish(null) }) // the status came: a body cut short does not change it
      res.on('aborted', () => { finish(null) })
    })
    const timer = setTimeout(() => { finish(`timeout after ${timeoutMs} ms`) }, timeoutMs)
    const onAbort = (): void => { finish('cancelled') }
    signal?.addEventListener('abort', onAbort)
    if (signal?.aborted === true) onAbort()
    req.on('error', (err: NodeJS.ErrnoException) => { finish(describe(err)) })
    req.end(body)
  })
}

function isLiteral (host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':')
}

/** An error as a short, safe sentence: its code (ECONNRESET...) or a generic message, never a stack or a header. */
function describe (err: NodeJS.ErrnoException): string {
  if (typeof err.code === 'string') return `connection failed (${err.code})`
  return 'connection failed'
}

/** Retry-After as seconds or an HTTP date, in milliseconds (bounded); null when absent or unreadable. */
export function parseRetryAfter (value: string | string[] | undefined, now = Date.now()): number | null {
  if (typeof value !== 'string') return null
  const text = value.trim()
  if (/^\d{1,10}$/.test(text)) return Math.min(MAX_RETRY_AFTER_MS, Number(text) * 1000)
  const date = Date.parse(text)
  if (Number.isNaN(date)) return null
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, date - now))
}
