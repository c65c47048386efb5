// A subscriber that stops reading (issue 17, item 7): what waits for its socket (frames not yet written,
// and the events piling up in mercurius' per-subscription queues, which mercurius fills without limit
// while it waits for each frame to be written) is bounded by SUBSCRIPTIONS_MAX_QUEUED_BYTES; beyond,
// the socket is closed with 1013 (and cut if it does not take the close), counted, and nothing of it is
// left: no connection, no lease, no keep-alive timer. A subscriber that reads gets every event meanwhile.
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { RawWebSocket } from './support/raw-websocket.ts'
import { activeTimers, listenForSockets, metric, until } from './support/socket-checks.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import type { IdentificationCompleted } from '../src/identification/events.ts'

const farmer = newApiKey('farmer')
const dashboard = newApiKey('dashboard')
const MAX_QUEUED_BYTES = 262_144
/** An answer of 4 KB: each event is a frame of about that size. */
const ANSWER = 'A John Deere tractor. '.repeat(190)

async function listening (t: Test): Promise<{ app: FastifyInstance, url: string }> {
  const app = await buildTestApp(t, {
    env: {
      AUTH_MODE: 'apikey',
      API_KEY_HASHES: `${farmer.entry}, ${dashboard.entry}`,
      HISTORY: 'off',
      SUBSCRIPTIONS_MAX_QUEUED_BYTES: String(MAX_QUEUED_BYTES),
      SUBSCRIPTIONS_PER_CALLER: '10',
      SUBSCRIPTIONS_KEEPALIVE_MS: '600000'
    }
  })
  return { app, url: await listenForSockets(app) }
}

async function subscribed (t: Test, app: FastifyInstance, url: string, key: string, subscriptions: number): Promise<RawWebSocket> {
  const before = await metric(app, 'agrivision_subscriptions_active')
  const socket = await RawWebSocket.connect(url)
  t.teardown(() => socket.destroy())
  socket.send({ type: 'connection_init', payload: { 'x-api-key': key } })
  await socket.waitFor(message => message.type === 'connection_ack')
  for (let i = 0; i < subscriptions; i++) {
    socket.send({ id: String(i), type: 'subscribe', payload: { query: 'subscription { identificationCompleted { id answer } }' } })
  }
  await until(async () => await metric(app, 'agrivision_subscriptions_active') === before + subscriptions, 'subscribed')
  return socket
}

/** A completed identification of the farmer's, as the flow announces it. */
function completed (i: number): IdentificationCompleted {
  return {
    id: `slow-${i}`,
    caller: { kind: 'api-key', id: 'farmer', roles: new Set(['Identify']) },
    requestId: `r${i}`,
    backend: 'SIMULATED',
    detail: 'low',
    upstreamMs: 1,
    upstreamStatus: null,
    cacheKey: null,
    sentImage: Buffer.alloc(0),
    identification: {
      id: `slow-${i}`,
      callerId: 'farmer',
      answer: ANSWER,
      vehicles: [],
      language: 'en',
      backend: 'SIMULATED',
      model: 'simulated',
      backendName: null,
      image: { sha256: 'ab', mimeType: 'image/jpeg', bytes: 1, width: 1, height: 1, sentMimeType: 'image/jpeg', sentBytes: 1, sentWidth: 1, sentHeight: 1, estimatedImageTokens: 85 },
      detailUsed: 'LOW',
      looks: 1,
      usage: null,
      cached: false,
      durationMs: 1,
      createdAt: new Date()
    }
  } as unknown as IdentificationCompleted
}

/**
 * Publishes `count` identifications one at a time, the server writing in between (as they come from separate
 * requests); stops early when `stop` says so.
 */
async function publish (app: FastifyInstance, count: number, stop: () => Promise<boolean> = async () => false): Promise<number> {
  for (let i = 0; i < count; i++) {
    app.identificationEvents.emit('completed', completed(i))
    await new Promise(resolve => setImmediate(resolve))
    if (i % 20 === 19 && await stop()) return i + 1
  }
  return count
}

for (const subscriptions of [5, 1]) {
  t.test(`a subscriber with ${subscriptions} subscription(s) that stops reading is closed with 1013 past SUBSCRIPTIONS_MAX_QUEUED_BYTES`, async t => {
    const { app, url } = await listening(t)
    const timersBefore = activeTimers()
    const reader = await subscribed(t, app, url, dashboard.key, 1) // its own identifications: none arrive
    const watcher = await subscribed(t, app, url, farmer.key, 1) // reads everything
    const stalled = await subscribed(t, app, url, farmer.key, subscriptions)
    stalled.pause()
    const refused = async (): Promise<boolean> => await metric(app, 'agrivision_subscription_refusals_total{reason="slow_consumer"}') === 1
    const published = await publish(app, 2000, refused)
    t.ok(await refused(), `closed for its backlog, after ${published} of 2,000 events`)
    t.ok(published < 2000, 'before the 2,000 were published (kernel buffers and 256 KiB)')

    stalled.resume() // reads what was written, then the close frame
    t.same(await stalled.closedWithin(10_000), { code: 1013, reason: 'Too slow: too much waiting to be sent' }, 'closed with 1013')
    const frames = stalled.messages.filter(message => message.type === 'next').length
    t.ok(frames < published * subscriptions, `${frames} of ${published * subscriptions} frames were sent to it; the rest dropped`)

    await until(() => watcher.messages.filter(message => message.type === 'next').length === published, 'the watcher gets every event')
    t.pass('a subscriber that reads got all of them')
    t.equal(reader.socket.destroyed, false, 'the others stay connected')
    reader.destroy()
    watcher.destroy()
    await until(async () => await metric(app, 'agrivision_subscription_connections') === 0, 'no socket left')
    await until(async () => await metric(app, 'agrivision_subscriptions_active') === 0, 'no lease left')
    await until(() => activeTimers() <= timersBefore, 'no timer left')
    t.pass('no socket, lease or timer left')
  })
}

t.test('a stalled subscriber that never reads again is cut within seconds of its 1013', async t => {
  const { app, url } = await listening(t)
  const stalled = await subscribed(t, app, url, farmer.key, 5)
  stalled.pause()
  const refused = async (): Promise<boolean> => await metric(app, 'agrivision_subscription_refusals_total{reason="slow_consumer"}') === 1
  await publish(app, 4000, refused)
  t.ok(await refused(), 'refused')
  const at = Date.now()
  await until(async () => await metric(app, 'agrivision_subscription_connections') === 0, 'the server let go of the socket', 10_000)
  t.ok(Date.now() - at < 7000, `let go in ${Date.now() - at} ms (not ws' 30 s close wait)`)
  await until(async () => await metric(app, 'agrivision_subscriptions_active') === 0, 'no lease left')
  t.pass('its leases released')
})
