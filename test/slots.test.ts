// Identification slots are shared: one caller may hold only its share, and an upload that stops
// making progress gives its slot back after UPLOAD_IDLE_TIMEOUT_MS, with a coded error.
import t, { type Test } from 'tap'
import type net from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { identifyBody, type EncodedBody } from './support/multipart.ts'
import { connect, postHead, readResponse, write, type RawResponse } from './support/raw-http.ts'
import * as images from './support/images.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import { AdmissionGate } from '../src/limits/admission.ts'

const photo = await images.jpeg(64, 48)
const alice = newApiKey('alice')
const bob = newApiKey('bob')
const IDLE_MS = 600

async function listening (t: Test, env: Record<string, string>): Promise<{ app: FastifyInstance, port: number }> {
  const app = await buildTestApp(t, {
    env: { AUTH_MODE: 'apikey', API_KEY_HASHES: `${alice.entry},${bob.entry}`, UPLOAD_IDLE_TIMEOUT_MS: String(IDLE_MS), ...env }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, port: (app.server.address() as net.AddressInfo).port }
}

/** An upload that sends `fraction` of its body, then nothing: the response is what the server said, if anything. */
async function stalledUpload (
  port: number, key: string, body: EncodedBody, fraction: number
): Promise<{ socket: net.Socket, response: Promise<RawResponse> }> {
  const socket = await connect(port)
  const response = readResponse(socket, 10_000)
  response.catch(() => {})
  const cut = Math.floor(body.payload.length * fraction)
  await write(socket, postHead('/graphql', { ...body.headers, 'x-api-key': key }, body.payload.length))
  await write(socket, body.payload.subarray(0, cut))
  return { socket, response }
}

async function upload (app: FastifyInstance, key: string) {
  const body = await identifyBody(photo)
  const started = performance.now()
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: body.payload, headers: { ...body.headers, 'x-api-key': key } })
  return { status: res.statusCode, body: res.json(), ms: performance.now() - started }
}

t.test('the gate: a caller holds at most its share, held and queued together', async t => {
  const refusals: string[] = []
  const options = { maxConcurrency: 4, maxConcurrencyPerCaller: 2, queueSize: 4, queueTimeoutMs: 1000 }
  const gate = new AdmissionGate(options, { refused: reason => refusals.push(reason) })
  const a1 = await gate.acquire('a')
  const a2 = await gate.acquire('a')
  await t.rejects(gate.acquire('a'), { code: 'RATE_LIMITED', statusCode: 429 }, 'a third slot for the same caller')
  const b1 = await gate.acquire('b')
  const b2 = await gate.acquire('b')
  const c1 = gate.acquire('c') // queued: the gate is full
  await t.rejects(gate.acquire('b'), { code: 'RATE_LIMITED' }, 'a queued request counts for its caller')
  a1()
  a1() // idempotent
  const c1Release = await c1
  t.equal(gate.active, 4)
  t.same(refusals, ['caller_concurrency', 'caller_concurrency'])
  const a3 = await Promise.race([gate.acquire('a'), new Promise<'queued'>(resolve => setTimeout(() => resolve('queued'), 50))])
  t.equal(a3, 'queued', 'after releasing one, the caller may ask again (and waits: the gate is full)')
  for (const release of [a2, b1, b2, c1Release]) release()
  t.equal(gate.queued, 0)
})

t.test('a caller that stalls uploads keeps at most its share; others go on at once', async t => {
  const { app, port } = await listening(t, { VISION_MAX_CONCURRENCY: '3', VISION_MAX_CONCURRENCY_PER_CALLER: '2', VISION_QUEUE_SIZE: '0' })
  const body = await identifyBody(photo)
  // Three shapes of a stall: after the headers, inside `operations`, inside the file.
  const stalls = await Promise.all([0, 0.2, 0.9].map(fraction => stalledUpload(port, alice.key, body, fraction)))
  t.teardown(() => { for (const { socket } of stalls) socket.destroy() })

  let settled = 0
  for (const stall of stalls) stall.response.then(() => { settled++ }, () => {})
  const refused = await Promise.race(stalls.map(s => s.response))
  t.equal(refused.statusCode, 429, 'the third stall is refused at once')
  t.equal(JSON.parse(refused.body).errors[0].extensions.code, 'RATE_LIMITED')

  const other = await upload(app, bob.key)
  t.equal(other.status, 200, 'another caller gets a slot while the stalls hold theirs')
  t.equal(settled, 1, `answered (in ${Math.round(other.ms)} ms) while both stalls still held their slots`)
})

t.test('a stalled upload is refused with UPLOAD_TIMEOUT after the idle timeout, and frees its slot', async t => {
  const { app, port } = await listening(t, { VISION_MAX_CONCURRENCY: '1', VISION_MAX_CONCURRENCY_PER_CALLER: '1', VISION_QUEUE_SIZE: '4' })
  const body = await identifyBody(await images.jpeg(400, 300))
  for (const fraction of [0, 0.5, 0.95]) {
    const started = performance.now()
    const stall = await stalledUpload(port, alice.key, body, fraction)
    // Bob waits in the queue for the only slot while Alice's upload is stalled.
    const waiting = upload(app, bob.key)
    const response = await stall.response
    const waited = performance.now() - started
    t.equal(response.statusCode, 408, `stalled at ${fraction}`)
    const error = JSON.parse(response.body).errors[0]
    t.equal(error.extensions.code, 'UPLOAD_TIMEOUT')
    t.equal(error.extensions.idleTimeoutMs, IDLE_MS)
    t.ok(waited >= IDLE_MS - 50 && waited < IDLE_MS + 2000, `refused after ${Math.round(waited)} ms`)
    t.equal(response.headers.connection, 'close')
    const queued = await waiting
    t.equal(queued.status, 200, 'the queued caller got the freed slot')
    stall.socket.destroy()
  }
})

t.test('an upload that trickles keeps going: the timeout is for no progress, not for slowness', async t => {
  const { port } = await listening(t, {})
  const body = await identifyBody(photo)
  const socket = await connect(port)
  t.teardown(() => socket.destroy())
  const response = readResponse(socket, 20_000)
  await write(socket, postHead('/graphql', { ...body.headers, 'x-api-key': alice.key }, body.payload.length))
  const step = Math.ceil(body.payload.length / 8)
  for (let offset = 0; offset < body.payload.length; offset += step) {
    await new Promise(resolve => setTimeout(resolve, IDLE_MS / 2)) // 8 × 300 ms: longer than the timeout in all
    await write(socket, body.payload.subarray(offset, offset + step))
  }
  t.equal((await response).statusCode, 200)
})
