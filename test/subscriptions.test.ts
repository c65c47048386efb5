// Subscriptions end to end with the graphql-ws client library over real sockets: authentication in
// connection_init (refused with 4401/4403, accepted with an API key or an Entra token), a completed
// identification made with the HTTP multipart mutation received as `identificationCompleted`, filters,
// own versus all (ReadAll), the per-caller (subscriptions and sockets) and total limits, the idle timeout,
// a repeated subscription id (4409), the message size limit, the init timeout, a token's expiry and the
// 1001 close at shutdown. Two instances through Redis: subscriptions-redis.test.ts.
import http from 'node:http'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'
import { JwksServer, newSigningKey, nowSeconds, sign, userClaims, AUDIENCE, TENANT_ID } from './support/jwks.ts'
import { COMPLETED, subscribe, within, type Subscriber } from './support/subscriber.ts'
import { newApiKey } from '../src/callers/api-keys.ts'

const farmer = newApiKey('farmer')
const neighbour = newApiKey('neighbour')
const dashboard = newApiKey('dashboard')
const API_KEY_ENV = {
  AUTH_MODE: 'apikey',
  API_KEY_HASHES: `${farmer.entry}, ${neighbour.entry}, ${dashboard.entry}:VehicleIdentification.ReadAll`
}

/** The app listening on loopback; its ws:// URL. */
async function listening (t: Test, env: Record<string, string> = {}): Promise<{ app: FastifyInstance, url: string, origin: string }> {
  const app = await buildTestApp(t, { env: { ...API_KEY_ENV, ...env } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  return { app, url: `ws://127.0.0.1:${port}/graphql`, origin: `http://127.0.0.1:${port}` }
}

/** An identification over HTTP (multipart, as a client sends it); its `identifyVehicle` result. */
async function identify (origin: string, photo: Buffer, key: string | Record<string, string> = farmer.key): Promise<any> {
  const body = await identifyBody(photo)
  const credentials = typeof key === 'string' ? { 'x-api-key': key } : key
  const res = await fetch(`${origin}/graphql`, { method: 'POST', headers: { ...body.headers, ...credentials }, body: new Uint8Array(body.payload) })
  const json = await res.json() as any
  if (json.data?.identifyVehicle == null) throw new Error(`identification failed: ${JSON.stringify(json)}`)
  return json.data.identifyVehicle
}

function watch (t: Test, url: string, options: Parameters<typeof subscribe>[1] = {}): Subscriber {
  const subscriber = subscribe(url, options)
  t.teardown(() => subscriber.dispose())
  return subscriber
}

/** Subscribed and acknowledged, and the subscription started on the server (the gauge counts it). */
async function watching (t: Test, app: FastifyInstance, url: string, options: Parameters<typeof subscribe>[1] = {}): Promise<Subscriber> {
  const before = await activeSubscriptions(app)
  const subscriber = watch(t, url, options)
  await within(subscriber.connected, 5000, 'connection_ack')
  const deadline = Date.now() + 5000
  while (await activeSubscriptions(app) <= before) {
    if (Date.now() > deadline) throw new Error('the subscription did not start')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  return subscriber
}

async function activeSubscriptions (app: FastifyInstance): Promise<number> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  const match = /^agrivision_subscriptions_active (\d+)$/m.exec(res.payload)
  return Number(match?.[1] ?? NaN)
}

t.test('an API key in connection_init: the caller receives its own identification as the API shows it', async t => {
  const { app, url, origin } = await listening(t)
  const subscriber = await watching(t, app, url, { connectionParams: { 'x-api-key': farmer.key } })
  const made = await identify(origin, await images.jpeg(20, 20))
  const { data } = await subscriber.next()
  const live = data.identificationCompleted
  t.equal(live.id, made.id, 'the identification just made')
  t.equal(live.callerId, 'farmer')
  t.same(live.vehicles, made.vehicles.map(({ evidence: _evidence, ...vehicle }: any) => vehicle), 'its vehicles')
  const fields = (identification: any): unknown[] => ['answer', 'createdAt', 'durationMs', 'cached', 'image'].map(name => identification[name])
  t.same(fields(live), fields(made), 'the same fields as the mutation answered')
  t.equal(live.thumbnailUrl, null, 'no thumbnail yet: it is made after the answer')
})

t.test('refused in connection_init, after the upgrade (which needs no credentials): 4401 and 4403', async t => {
  const { app, url } = await listening(t)
  const refusals = [['no credentials', {}], ['an unknown key', { 'x-api-key': newApiKey().key }], ['a Bearer token', { authorization: 'Bearer x.y.z' }]] as const
  for (const [what, params] of refusals) {
    const subscriber = watch(t, url, { connectionParams: params })
    const closed = await within(subscriber.closed, 5000, what)
    t.equal(closed.code, 4401, `${what}: closed with 4401 Unauthorized`)
    t.match(await subscriber.error, { code: 4401 }, `${what}: the subscription ends with it`)
  }
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.payload, /agrivision_subscription_refusals_total\{reason="unauthenticated"\} 3/, 'counted')

  t.test('a credential in the URL: the upgrade itself is refused (400), as any request', async t => {
    const upgrade = (path: string): Promise<number> => new Promise((resolve, reject) => {
      const req = http.get(`${url.replace('ws:', 'http:')}${path}`, {
        headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-protocol': 'graphql-transport-ws' }
      })
      req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode ?? 0) })
      req.on('response', res => { res.resume(); resolve(res.statusCode ?? 0) })
      req.on('error', reject)
    })
    t.equal(await upgrade(''), 101, 'without credentials: switched')
    t.equal(await upgrade(`?access_token=${newApiKey().key}`), 400, 'with one in the URL: 400')
  })

  t.test('AUTH_MODE=none outside production: anonymous callers subscribe without credentials', async t => {
    const { app, url, origin } = await listening(t, { AUTH_MODE: 'none' })
    const subscriber = await watching(t, app, url)
    const body = await identifyBody(await images.jpeg(26, 20))
    const res = await fetch(`${origin}/graphql`, { method: 'POST', headers: body.headers, body: new Uint8Array(body.payload) })
    const made = (await res.json() as any).data.identifyVehicle
    t.same((await subscriber.next()).data.identificationCompleted.callerId, 'anonymous')
    t.equal(made.callerId, 'anonymous')
  })

  t.test('anonymous callers (AUTH_MODE=none) in production: 4403, as for history', async t => {
    const { url } = await listening(t, { AUTH_MODE: 'none', NODE_ENV: 'production', ALLOW_ANONYMOUS: 'true' })
    const subscriber = watch(t, url)
    t.equal((await within(subscriber.closed, 5000, 'close')).code, 4403)
  })

  t.test('an Entra token without any of our roles: 4403 Forbidden', async t => {
    const jwks = await new JwksServer().start([await newSigningKey()])
    t.teardown(() => jwks.close())
    const { url } = await listening(t, entraEnv(jwks.uri))
    const token = await sign(jwks.keys[0]!, userClaims({ scp: 'User.Read' }))
    const subscriber = watch(t, url, { connectionParams: { authorization: `Bearer ${token}` } })
    t.equal((await within(subscriber.closed, 5000, 'close')).code, 4403)
  })
})

function entraEnv (jwksUri: string): Record<string, string> {
  return { AUTH_MODE: 'entra', ENTRA_TENANT_ID: TENANT_ID, ENTRA_AUDIENCE: AUDIENCE, ENTRA_JWKS_URI: jwksUri, API_KEY_HASHES: '' }
}

t.test('own versus all: a caller sees its own; ReadAll sees everyone\'s and may narrow by caller', async t => {
  const { app, url, origin } = await listening(t)
  const own = await watching(t, app, url, { connectionParams: { 'x-api-key': farmer.key } })
  const other = await watching(t, app, url, { connectionParams: { 'x-api-key': neighbour.key } })
  const all = await watching(t, app, url, { connectionParams: { 'x-api-key': dashboard.key } })
  const onlyNeighbour = await watching(t, app, url, { connectionParams: { 'x-api-key': dashboard.key }, variables: { filter: { caller: 'neighbour' } } })

  const first = await identify(origin, await images.jpeg(21, 20), farmer.key)
  const second = await identify(origin, await images.jpeg(22, 20), neighbour.key)
  t.equal((await own.next()).data.identificationCompleted.id, first.id, 'the farmer gets its own')
  t.equal((await other.next()).data.identificationCompleted.id, second.id, 'the neighbour gets its own, not the farmer\'s before it')
  t.same([(await all.next()).data.identificationCompleted.id, (await all.next()).data.identificationCompleted.id], [first.id, second.id], 'ReadAll gets both')
  t.equal((await onlyNeighbour.next()).data.identificationCompleted.id, second.id, 'filter.caller narrows ReadAll to one caller')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.same([own.received.length, other.received.length, onlyNeighbour.received.length], [1, 1, 1], 'nothing else arrived')

  const forbidden = watch(t, url, { connectionParams: { 'x-api-key': farmer.key }, variables: { filter: { caller: 'neighbour' } } })
  t.match(await within(forbidden.error, 5000, 'error'), [{ extensions: { code: 'FORBIDDEN' } }], 'filter.caller without ReadAll: FORBIDDEN')
})

t.test('filters: category, make, time', async t => {
  const { app, url, origin } = await listening(t)
  // Photos whose simulated vehicles differ in category (picked from the image's hash).
  const photos: Array<{ photo: Buffer, category: string }> = []
  for (let width = 30; photos.length < 2; width++) {
    const photo = await images.jpeg(width, 30)
    const { vehicles } = await identify(origin, photo)
    if (!photos.some(known => known.category === vehicles[0].category)) photos.push({ photo, category: vehicles[0].category })
  }
  const [a, b] = photos as [typeof photos[0], typeof photos[0]]
  const key = { 'x-api-key': farmer.key }
  const byCategory = await watching(t, app, url, { connectionParams: key, variables: { filter: { category: b.category } } })
  const byMake = await watching(t, app, url, { connectionParams: key, variables: { filter: { make: ' SIMULATED ', category: a.category } } })
  const otherMake = await watching(t, app, url, { connectionParams: key, variables: { filter: { make: 'John Deere' } } })
  const from = new Date(Date.now() - 60_000).toISOString()
  const past = await watching(t, app, url, { connectionParams: key, variables: { filter: { to: from } } })
  const recent = await watching(t, app, url, { connectionParams: key, variables: { filter: { from } } })

  const first = await identify(origin, a.photo)
  const second = await identify(origin, b.photo)
  t.equal((await byCategory.next()).data.identificationCompleted.id, second.id, 'category: only the matching one')
  t.equal((await byMake.next()).data.identificationCompleted.id, first.id, 'make (any case and spacing) and category: one vehicle of both')
  t.same([(await recent.next()).data.identificationCompleted.id, (await recent.next()).data.identificationCompleted.id], [first.id, second.id], 'from')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.same([byCategory.received.length, byMake.received.length, otherMake.received.length, past.received.length], [1, 1, 0, 0], 'nothing else arrived')

  // On a socket the caller has (it holds SUBSCRIPTIONS_PER_CALLER, 5, sockets already).
  const refusedOn = async (subscriber: Subscriber, query: string, variables: Record<string, unknown> = {}): Promise<unknown> =>
    await within(new Promise(resolve => subscriber.client.subscribe({ query, variables }, { next: () => {}, error: resolve, complete: () => {} })), 5000, 'error')
  t.match(await refusedOn(byCategory, COMPLETED, { filter: { make: ' ' } }), [{ extensions: { code: 'BAD_USER_INPUT', argument: 'filter.make' } }], 'a blank make is refused')
  t.match(await refusedOn(byCategory, 'subscription { identificationCompleted { nope } }'), [{ message: /Cannot query field "nope"/ }], 'the document is validated')
})

t.test('limits: SUBSCRIPTIONS_PER_CALLER subscriptions across sockets and sockets per caller, MAX_SUBSCRIPTIONS in all', async t => {
  const { app, url, origin } = await listening(t, { SUBSCRIPTIONS_PER_CALLER: '2', MAX_SUBSCRIPTIONS: '3' })
  const key = { 'x-api-key': farmer.key }
  const one = await watching(t, app, url, { connectionParams: key })
  const two = await watching(t, app, url, { connectionParams: key })
  const third = new Promise(resolve => two.client.subscribe({ query: 'subscription { identificationCompleted { id } }' }, { next: () => {}, error: resolve, complete: () => {} }))
  t.match(await within(third, 5000, 'error'), [{ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', limit: 2 } }], 'the caller\'s third, on its second socket')
  const thirdSocket = watch(t, url, { connectionParams: key })
  t.same(await within(thirdSocket.closed, 5000, 'close'), { code: 1013, reason: 'Too many connections for this caller' },
    'a third socket of the caller: closed with 1013 once authenticated')
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.payload, /agrivision_subscription_refusals_total\{reason="per_caller_connections"\} 1/, 'counted')

  await one.dispose() // ends its subscription: the caller may start another
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(await activeSubscriptions(app), 1, 'the ended one released its place')
  const again = await watching(t, app, url, { connectionParams: key })
  const other = await watching(t, app, url, { connectionParams: { 'x-api-key': neighbour.key } })
  // A second subscription on the neighbour's socket (graphql-ws multiplexes them): the fourth in all.
  const full = new Promise(resolve => other.client.subscribe({ query: 'subscription { identificationCompleted { id } }' }, { next: () => {}, error: resolve, complete: () => {} }))
  t.match(await within(full, 5000, 'error'), [{ extensions: { code: 'OVERLOADED' } }], 'past MAX_SUBSCRIPTIONS: OVERLOADED')
  const extra = watch(t, url, { connectionParams: { 'x-api-key': dashboard.key } })
  t.same(await within(extra.closed, 5000, 'close'), { code: 1013, reason: 'Too many connections' }, 'as many sockets as MAX_SUBSCRIPTIONS: one more is closed with 1013 Try Again Later')
  const made = await identify(origin, await images.jpeg(23, 20))
  t.equal((await again.next()).data.identificationCompleted.id, made.id, 'the others go on')
})

t.test('sockets per caller: a caller cannot hold every socket of the instance', async t => {
  const { app, url } = await listening(t, { SUBSCRIPTIONS_PER_CALLER: '2', MAX_SUBSCRIPTIONS: '10' })
  const closes: Array<Promise<{ code: number, reason: string } | 'acked'>> = []
  for (let i = 0; i < 4; i++) {
    const socket = await rawSocket(t, url)
    closes.push(Promise.race([socket.closed, socket.acked.then(() => 'acked' as const)]))
  }
  const outcomes = await within(Promise.all(closes), 5000, 'outcomes')
  t.same(outcomes.filter(outcome => outcome === 'acked').length, 2, 'two sockets of the caller accepted, without a subscription')
  t.same(outcomes.filter(outcome => outcome !== 'acked'), [{ code: 1013, reason: 'Too many connections for this caller' }, { code: 1013, reason: 'Too many connections for this caller' }], 'the others closed')
  const neighbours = watch(t, url, { connectionParams: { 'x-api-key': neighbour.key } })
  await within(neighbours.connected, 5000, 'another caller still connects')
  t.pass('another caller still connects')
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).payload.match(/agrivision_subscription_connections (\d+)/)?.[1], '3')
})

t.test('an authenticated socket without a subscription is closed after SUBSCRIPTIONS_IDLE_TIMEOUT_MS with 1000', async t => {
  const { app, url } = await listening(t, { SUBSCRIPTIONS_IDLE_TIMEOUT_MS: '300' })
  const idle = await rawSocket(t, url)
  await within(idle.acked, 5000, 'ack')
  const started = performance.now()
  t.same(await within(idle.closed, 5000, 'close'), { code: 1000, reason: 'Idle: no subscription' }, 'closed as idle')
  t.ok(performance.now() - started >= 250, 'not before the timeout')

  const busy = await rawSocket(t, url)
  await within(busy.acked, 5000, 'ack')
  busy.send({ id: 'a', type: 'subscribe', payload: { query: 'subscription { identificationCompleted { id } }' } })
  await new Promise(resolve => setTimeout(resolve, 600))
  t.equal(busy.socket.readyState, WebSocket.OPEN, 'a socket with a running subscription stays open')
  busy.send({ id: 'a', type: 'complete' })
  t.same(await within(busy.closed, 5000, 'close'), { code: 1000, reason: 'Idle: no subscription' }, 'once it completed, the socket is idle again')

  const failing = await rawSocket(t, url)
  await within(failing.acked, 5000, 'ack')
  failing.send({ id: 'b', type: 'subscribe', payload: { query: 'subscription { identificationCompleted { nope } }' } })
  t.same(await within(failing.closed, 5000, 'close'), { code: 1000, reason: 'Idle: no subscription' }, 'a subscription the server ended (error) frees its socket too')
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.payload, /agrivision_subscription_refusals_total\{reason="idle"\} 3/, 'counted')
})

t.test('a subscribe with an id already running closes the socket with 4409, and its lease is released', async t => {
  const { app, url } = await listening(t)
  const socket = await rawSocket(t, url)
  await within(socket.acked, 5000, 'ack')
  const subscribe = { id: 'one', type: 'subscribe', payload: { query: 'subscription { identificationCompleted { id } }' } }
  socket.send(subscribe)
  await until(async () => await activeSubscriptions(app) === 1, 'the subscription started')
  socket.send({ id: 'one', type: 'complete' })
  await until(async () => await activeSubscriptions(app) === 0, 'completed by the client')
  socket.send(subscribe)
  await until(async () => await activeSubscriptions(app) === 1, 'an id the client completed may be used again')
  socket.send(subscribe)
  t.same(await within(socket.closed, 5000, 'close'), { code: 4409, reason: 'Subscriber for one already exists' })
  await until(async () => await activeSubscriptions(app) === 0, 'the lease released with the socket')
  t.pass('the lease released with the socket')
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.payload, /agrivision_subscription_refusals_total\{reason="duplicate_id"\} 1/, 'counted')
})

async function until (condition: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/** A graphql-transport-ws socket by hand (the farmer's connection_init sent): what the client library would not send. */
async function rawSocket (t: Test, url: string, key = farmer.key): Promise<{
  socket: WebSocket, acked: Promise<void>, closed: Promise<{ code: number, reason: string }>, send: (message: unknown) => void
}> {
  const socket = new WebSocket(url, 'graphql-transport-ws')
  t.teardown(() => socket.close())
  const closed = new Promise<{ code: number, reason: string }>(resolve => socket.addEventListener('close', ({ code, reason }) => resolve({ code, reason })))
  const acked = new Promise<void>(resolve => socket.addEventListener('message', event => {
    if (JSON.parse(String(event.data)).type === 'connection_ack') resolve()
  }))
  await new Promise(resolve => socket.addEventListener('open', resolve))
  const send = (message: unknown): void => socket.send(JSON.stringify(message))
  send({ type: 'connection_init', payload: { 'x-api-key': key } })
  return { socket, acked, closed, send }
}

t.test('a message over SUBSCRIPTIONS_MAX_PAYLOAD_BYTES closes the socket with 1009', async t => {
  const { app, url } = await listening(t, { SUBSCRIPTIONS_MAX_PAYLOAD_BYTES: '2048' })
  const subscriber = watch(t, url, {
    connectionParams: { 'x-api-key': farmer.key },
    variables: { filter: { make: 'x'.repeat(4096) } }
  })
  t.equal((await within(subscriber.closed, 5000, 'close')).code, 1009, 'Message Too Big')
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.payload, /agrivision_subscription_refusals_total\{reason="payload_too_large"\} 1/, 'counted')
})

t.test('a socket that does not send connection_init in time is closed with 4408; a second one with 4429', async t => {
  const { url } = await listening(t, { SUBSCRIPTIONS_INIT_TIMEOUT_MS: '300' })
  const silent = new WebSocket(url, 'graphql-transport-ws')
  const silentClosed = new Promise<CloseEvent>(resolve => silent.addEventListener('close', resolve))
  t.equal((await within(silentClosed, 5000, 'close')).code, 4408)

  const twice = new WebSocket(url, 'graphql-transport-ws')
  const twiceClosed = new Promise<CloseEvent>(resolve => twice.addEventListener('close', resolve))
  await new Promise(resolve => twice.addEventListener('open', resolve))
  twice.send(JSON.stringify({ type: 'connection_init', payload: { 'x-api-key': farmer.key } }))
  twice.send(JSON.stringify({ type: 'connection_init', payload: { 'x-api-key': farmer.key } }))
  t.equal((await within(twiceClosed, 5000, 'close')).code, 4429)
})

t.test('shutdown: every socket is closed with 1001 Going Away, promptly', async t => {
  const { app, url } = await listening(t)
  const subscribers = [await watching(t, app, url, { connectionParams: { 'x-api-key': farmer.key } }), await watching(t, app, url, { connectionParams: { 'x-api-key': dashboard.key } })]
  const started = performance.now()
  await app.close()
  const closed = await Promise.all(subscribers.map(async subscriber => await within(subscriber.closed, 5000, 'close')))
  t.same(closed.map(event => event.code), [1001, 1001])
  t.ok(performance.now() - started < 3000, `closed in ${Math.round(performance.now() - started)} ms`)
})

t.test('Entra: the socket closes (4403) when the token expires; the client comes back with a fresh one', async t => {
  const jwks = await new JwksServer().start([await newSigningKey()])
  t.teardown(() => jwks.close())
  const { app, url, origin } = await listening(t, { ...entraEnv(jwks.uri), AUTH_MODE: 'entra,apikey', API_KEY_HASHES: farmer.entry })
  let tokens = 0
  const subscriber = await watching(t, app, url, {
    // graphql-ws asks for the params on every connection: each time a token valid for 2 more seconds.
    connectionParams: async () => {
      tokens++
      return { authorization: `Bearer ${await sign(jwks.keys[0]!, userClaims({ exp: nowSeconds() + 2 }))}` }
    },
    retryAttempts: 1,
    retryWaitMs: 50
  } as any)
  const closed = await within(subscriber.closed, 5000, 'close at expiry')
  t.same(closed, { code: 4403, reason: 'Token expired' }, 'closed when the token expired')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(tokens, 2, 'the client reconnected with a fresh token')
  await identify(origin, await images.jpeg(24, 20), farmer.key)
  const made = await identify(origin, await images.jpeg(25, 20), { authorization: `Bearer ${await sign(jwks.keys[0]!, userClaims())}` })
  t.equal((await subscriber.next()).data.identificationCompleted.id, made.id, 'the subscription goes on: the user\'s own identification, not the API key\'s')
})

t.test('a socket that keeps starting refused subscriptions is closed with 4400', async t => {
  const { url } = await listening(t, { SUBSCRIPTIONS_MESSAGES_PER_SECOND: '1000' })
  const socket = new WebSocket(url, 'graphql-transport-ws')
  const closed = new Promise<CloseEvent>(resolve => socket.addEventListener('close', resolve))
  const messages: any[] = []
  const acked = new Promise<void>(resolve => socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data))
    messages.push(message)
    if (message.type === 'connection_ack') resolve()
  }))
  await new Promise(resolve => socket.addEventListener('open', resolve))
  socket.send(JSON.stringify({ type: 'connection_init', payload: { 'x-api-key': farmer.key } }))
  await within(acked, 5000, 'ack')
  for (let i = 0; i < 100; i++) {
    socket.send(JSON.stringify({ id: String(i), type: 'subscribe', payload: { query: 'subscription { identificationCompleted { nope } }' } }))
  }
  const event = await within(closed, 5000, 'close')
  t.same([event.code, event.reason], [4400, 'Too many failed subscriptions'], 'closed at the 100th')
  t.ok(messages.some(message => message.type === 'error'), 'the refused ones were answered with errors')
})
