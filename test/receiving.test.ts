// Receiving an upload holds no vision slot: stalled, dripping or half-sent bodies, from one caller or
// many, on one connection or many, never keep another caller from an answer. What bounds receiving is
// the upload bytes in flight (per caller: 429, in total: 503, both at once before the body is read),
// the idle timeout and the minimum rate (408 UPLOAD_TIMEOUT). Raw sockets, as an attacker sends them.
import t, { type Test } from 'tap'
import type net from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { identifyBody, type EncodedBody } from './support/multipart.ts'
import { closed, connect, postHead, readResponse, write, type RawResponse } from './support/raw-http.ts'
import * as images from './support/images.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import { UploadBudget } from '../src/limits/receiving.ts'
import { MIN_UPLOAD_CHARGE, uploadCharge } from '../src/graphql/upload.ts'

const photo = await images.jpeg(400, 300)
/** About 300 KB: a photo as a phone would send it (the comment segments pad a small JPEG). */
const padding = Array.from({ length: 5 }, () => images.jpegSegment(0xfe, Buffer.alloc(60_000, 0x41)))
const bigPhoto = images.beforeJpegEnd(photo, Buffer.concat(padding))
const keys = Array.from({ length: 20 }, (_, i) => newApiKey(`caller-${i}`))
const [alice, bob] = keys as [typeof keys[0], typeof keys[0]]
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** The review's scenario: 2 slots, a queue of 2, the default per-caller cap of 4 (the test env raises it). */
const SCENARIO = { VISION_MAX_CONCURRENCY: '2', VISION_QUEUE_SIZE: '2', VISION_MAX_CONCURRENCY_PER_CALLER: '4' }

async function listening (t: Test, env: Record<string, string>): Promise<{ app: FastifyInstance, port: number }> {
  const app = await buildTestApp(t, { env: { AUTH_MODE: 'apikey', API_KEY_HASHES: keys.map(k => k.entry).join(','), ...env } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, port: (app.server.address() as net.AddressInfo).port }
}

type Shape = 'http-head' | 'part-header' | 'mid-file' | 'drip'

interface Stall {
  socket: net.Socket
  /** What the server answered, if it did (rejects if it did not within the wait). */
  response: Promise<RawResponse>
}

/** An upload that stops (or drips 1 byte a second) at the place `shape` names. */
async function stall (port: number, key: string, body: EncodedBody, shape: Shape, waitMs = 15_000): Promise<Stall> {
  const socket = await connect(port)
  const response = readResponse(socket, waitMs)
  response.catch(() => {})
  const head = postHead('/graphql', { ...body.headers, 'x-api-key': key }, body.payload.length)
  if (shape === 'http-head') {
    await write(socket, head.slice(0, head.length - 40)) // the request's own headers never end
    return { socket, response }
  }
  await write(socket, head)
  if (shape === 'part-header') {
    // Inside the file part's headers: after `Content-Disposition: …; filename="photo.jpg"`, before its blank line.
    await write(socket, body.payload.subarray(0, body.payload.indexOf('filename=') + 12))
  } else if (shape === 'mid-file') {
    await write(socket, body.payload.subarray(0, body.payload.length >> 1))
  } else {
    let offset = 0
    const next = (): void => { void write(socket, body.payload.subarray(offset, ++offset)) }
    next()
    const drip = setInterval(next, 1000)
    socket.once('close', () => clearInterval(drip))
    response.finally(() => clearInterval(drip)).catch(() => {})
  }
  return { socket, response }
}

async function upload (origin: string, key: string, file = photo) {
  const body = await identifyBody(file)
  const started = performance.now()
  const res = await fetch(`${origin}/graphql`, { method: 'POST', headers: { ...body.headers, 'x-api-key': key }, body: new Uint8Array(body.payload), signal: AbortSignal.timeout(30_000) })
  const json = await res.json() as { data?: { identifyVehicle?: { id: string } }, errors?: Array<{ extensions: Record<string, unknown> }> }
  return { status: res.status, json, ms: performance.now() - started, retryAfter: res.headers.get('retry-after') }
}

async function gauges (app: FastifyInstance): Promise<Record<string, number>> {
  const text = (await app.inject('/metrics')).body
  const read = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])
  return {
    slots: read('agrivision_admission_active'),
    queued: read('agrivision_admission_queued'),
    uploads: read('agrivision_uploads_in_flight'),
    bytes: read('agrivision_upload_bytes_in_flight')
  }
}

/** The gauges once `ready` holds of them (the stalls' requests have reached the upload hook), or after 5 s. */
async function settled (app: FastifyInstance, ready: (g: Record<string, number>) => boolean): Promise<Record<string, number>> {
  const deadline = Date.now() + 5000
  let read = await gauges(app)
  const seen = [read.uploads]
  while (!ready(read) && Date.now() < deadline) {
    await sleep(50)
    read = await gauges(app)
    seen.push(read.uploads)
  }
  if (!ready(read)) console.error(`gauges never settled: uploads seen ${seen.join(',')}`)
  return read
}

const origin = (port: number): string => `http://127.0.0.1:${port}`

t.test('the budget: per caller 429, in total 503, at once with a retry time; any one upload fits an empty budget', async t => {
  const refusals: string[] = []
  const budget = new UploadBudget({ maxBytes: 1000, maxBytesPerCaller: 400, retryAfterSeconds: 5 }, reason => refusals.push(reason))
  const a1 = budget.reserve('a', 300)
  t.throws(() => budget.reserve('a', 200), { code: 'RATE_LIMITED', statusCode: 429, retryAfterSeconds: 5 }, 'past the caller\'s budget')
  const a2 = budget.reserve('a', 100)
  const b1 = budget.reserve('b', 400)
  const c1 = budget.reserve('c', 200)
  t.throws(() => budget.reserve('d', 1), { code: 'OVERLOADED', statusCode: 503, retryAfterSeconds: 5 }, 'past the total')
  t.same([budget.bytes, budget.uploads, budget.bytesOf('a')], [1000, 4, 400])
  a1()
  a1() // idempotent
  const d1 = budget.reserve('d', 300)
  for (const release of [a2, b1, c1, d1]) release()
  t.same([budget.bytes, budget.uploads, budget.bytesOf('a')], [0, 0, 0])
  const huge = budget.reserve('e', 5000)
  t.equal(budget.bytes, 5000, 'one upload larger than every budget still fits an empty one')
  t.throws(() => budget.reserve('f', 1), { code: 'OVERLOADED' })
  huge()
  t.same(refusals, ['upload_bytes_caller', 'upload_bytes_total', 'upload_bytes_total'])
})

t.test('what an upload is counted for: its declared length, at least 64 KiB, at most a whole request', async t => {
  const limits = { maxFileBytes: 1_000_000, maxFiles: 1, maxFieldBytes: 65_536, idleTimeoutMs: 5000, minBytesPerSecond: 1024 }
  const most = 1_000_000 + 2 * 65_536 + 16 * 1024
  t.equal(uploadCharge('500000', limits), 500_000)
  t.equal(uploadCharge('10', limits), MIN_UPLOAD_CHARGE)
  t.equal(uploadCharge('999999999999', limits), most, 'a declared length past the limits')
  t.equal(uploadCharge(undefined, limits), most, 'chunked: no length')
  t.equal(uploadCharge('12abc', limits), most, 'a malformed length')
})

t.test('the review\'s scenario: caller A\'s 4 stalled uploads keep caller B waiting for none of them', async t => {
  for (const shape of (process.env.SHAPES?.split(',') ?? ['mid-file', 'part-header', 'http-head', 'drip']) as Shape[]) {
    const { app, port } = await listening(t, SCENARIO) // the default idle timeout (5 s) and minimum rate
    const body = await identifyBody(bigPhoto)
    const stalls = await Promise.all(Array.from({ length: 4 }, () => stall(port, alice.key, body, shape)))
    t.teardown(() => { for (const { socket } of stalls) socket.destroy() })
    const expected = shape === 'http-head' ? 0 : 4
    const during = await settled(app, g => g.uploads === expected)
    t.equal(during.slots, 0, `${shape}: the stalls hold no slot`)
    t.equal(during.uploads, expected, `${shape}: they hold their upload bytes (${during.bytes})`)
    const answered = await upload(origin(port), bob.key)
    t.equal(answered.status, 200, `${shape}: B answered`)
    t.ok(answered.ms < 5000, `${shape}: B answered in ${Math.round(answered.ms)} ms (target: 5 s)`)
    const again = await upload(origin(port), alice.key)
    t.equal(again.status, 200, `${shape}: and A itself, within its byte budget`)
    for (const { socket } of stalls) socket.destroy()
  }
})

t.test('stalls are cut off: no progress for the idle timeout, or a drip under the minimum rate (408 UPLOAD_TIMEOUT)', async t => {
  const IDLE_MS = 1500 // longer than the drip's second between bytes
  const { app, port } = await listening(t, { ...SCENARIO, UPLOAD_IDLE_TIMEOUT_MS: String(IDLE_MS) })
  const body = await identifyBody(bigPhoto)
  for (const shape of ['mid-file', 'part-header', 'drip'] as const) {
    const started = performance.now()
    const { socket, response } = await stall(port, alice.key, body, shape)
    const answer = await response
    const waited = performance.now() - started
    t.equal(answer.statusCode, 408, `${shape}: 408`)
    const error = JSON.parse(answer.body).errors[0]
    t.equal(error.extensions.code, 'UPLOAD_TIMEOUT', `${shape}: UPLOAD_TIMEOUT`)
    if (shape === 'drip') {
      t.equal(error.extensions.minBytesPerSecond, 1024, 'the drip: refused for its rate, not for idling (a byte arrives every second)')
      t.match(error.message, /slower than the minimum of 1024 bytes\/s/)
    } else {
      t.equal(error.extensions.idleTimeoutMs, IDLE_MS)
    }
    t.ok(waited >= IDLE_MS - 50 && waited < IDLE_MS + 2500, `${shape}: refused after ${Math.round(waited)} ms`)
    t.equal(answer.headers.connection, 'close')
    await closed(socket)
    t.same(await gauges(app), { slots: 0, queued: 0, uploads: 0, bytes: 0 }, `${shape}: its bytes given back`)
  }
})

t.test('an upload that trickles faster than the minimum keeps going: neither idle nor too slow', async t => {
  const { port } = await listening(t, { UPLOAD_IDLE_TIMEOUT_MS: '600', UPLOAD_MIN_BYTES_PER_SECOND: '4096' })
  const body = await identifyBody(bigPhoto)
  const socket = await connect(port)
  t.teardown(() => socket.destroy())
  const response = readResponse(socket, 20_000)
  await write(socket, postHead('/graphql', { ...body.headers, 'x-api-key': alice.key }, body.payload.length))
  const step = Math.ceil(body.payload.length / 8)
  for (let offset = 0; offset < body.payload.length; offset += step) {
    await sleep(300) // 8 × 300 ms: longer than the idle timeout in all; ~120 KB/s on average
    await write(socket, body.payload.subarray(offset, offset + step))
  }
  t.equal((await response).statusCode, 200)
})

t.test('many callers each stalling: another caller is answered at once', async t => {
  const { app, port } = await listening(t, SCENARIO)
  const body = await identifyBody(bigPhoto)
  const attackers = keys.slice(2, 14)
  const stalls = (await Promise.all(attackers.map(key => Promise.all([
    stall(port, key.key, body, 'mid-file'), stall(port, key.key, body, 'drip'), stall(port, key.key, body, 'part-header')
  ])))).flat()
  t.teardown(() => { for (const { socket } of stalls) socket.destroy() })
  t.equal((await settled(app, g => g.uploads === 36)).uploads, 36, '12 callers × 3 stalls in flight')
  const answered = await upload(origin(port), bob.key)
  t.equal(answered.status, 200)
  t.ok(answered.ms < 5000, `B answered in ${Math.round(answered.ms)} ms`)
})

t.test('one caller on many connections: refused past its byte budget (429, at once); others unaffected', async t => {
  // 1 MiB per caller; each stall is counted for its declared ~300 KB: three fit.
  // An idle timeout long enough that the held stalls are not cut off while the test looks.
  const { app, port } = await listening(t, { ...SCENARIO, UPLOAD_BYTES_IN_FLIGHT_PER_CALLER: String(1024 * 1024), UPLOAD_IDLE_TIMEOUT_MS: '30000' })
  const body = await identifyBody(bigPhoto)
  const stalls = await Promise.all(Array.from({ length: 30 }, () => stall(port, alice.key, body, 'mid-file')))
  t.teardown(() => { for (const { socket } of stalls) socket.destroy() })
  const refused: RawResponse[] = []
  for (const s of stalls) s.response.then(answer => refused.push(answer), () => {})
  const deadline = Date.now() + 8000
  while (refused.length < 27 && Date.now() < deadline) await sleep(50)
  await sleep(300) // and no more than that

  t.equal(refused.length, 27, '27 of 30 refused at once')
  for (const answer of refused) {
    t.equal(answer.statusCode, 429)
    t.equal(JSON.parse(answer.body).errors[0].extensions.code, 'RATE_LIMITED')
    t.equal(answer.headers['retry-after'], '30', 'Retry-After: the idle timeout, by when a stall is cut off')
  }
  t.equal((await settled(app, g => g.uploads === 3)).uploads, 3)
  const answered = await upload(origin(port), bob.key)
  t.equal(answered.status, 200, 'B is answered')
  t.ok(answered.ms < 5000, `in ${Math.round(answered.ms)} ms`)
  const own = await upload(origin(port), alice.key, bigPhoto)
  t.equal(own.status, 429, 'A\'s own next upload waits for its stalls to end')
  t.equal(own.retryAfter, '30')
})

t.test('the total: past UPLOAD_BYTES_IN_FLIGHT, 503 OVERLOADED before the body is read; answered again once stalls are cut', async t => {
  const IDLE_MS = 3000 // the stalls must outlast the refusal below on a busy machine
  // 1 MiB in all; each upload counts at least 64 KiB: 16 stalls from 16 callers fill it.
  const env = { ...SCENARIO, UPLOAD_BYTES_IN_FLIGHT: String(1024 * 1024), UPLOAD_IDLE_TIMEOUT_MS: String(IDLE_MS) }
  const { app, port } = await listening(t, env)
  const body = await identifyBody(photo)
  const stalls = await Promise.all(keys.slice(2, 18).map(key => stall(port, key.key, body, 'mid-file')))
  t.teardown(() => { for (const { socket } of stalls) socket.destroy() })
  t.equal((await settled(app, g => g.uploads === 16)).bytes, 16 * MIN_UPLOAD_CHARGE)

  // Declare a 5 MB upload and send only its head: the answer comes anyway, at once.
  const big = await identifyBody(Buffer.alloc(5 * 1024 * 1024, 1))
  const socket = await connect(port)
  t.teardown(() => socket.destroy())
  const refusal = readResponse(socket, 3000)
  await write(socket, postHead('/graphql', { ...big.headers, 'x-api-key': bob.key }, big.payload.length))
  await write(socket, big.payload.subarray(0, 64 * 1024))
  const answer = await refusal
  t.equal(answer.statusCode, 503)
  t.equal(JSON.parse(answer.body).errors[0].extensions.code, 'OVERLOADED')
  t.equal(answer.headers['retry-after'], '3', 'Retry-After: the idle timeout, by when a stall is cut off')

  await Promise.all(stalls.map(s => s.response)) // cut off by the idle timeout (408)
  const answered = await upload(origin(port), bob.key)
  t.equal(answered.status, 200, 'answered once the stalls are cut off')
})
