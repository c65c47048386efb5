// Subscription sockets against an attacker's frames (issue 17, item 2), over raw TCP: each frame is read
// once and the rules hold however it is spelled (JSON escapes, upper-case escapes, duplicate keys,
// spacing, a BOM, a binary frame): a second connection_init closes with 4429, a repeated id with 4409,
// anything the protocol does not have with 4400, a subscribe before connection_init with 4401; the
// legacy `graphql-ws` subprotocol is refused at the upgrade; a socket sending too fast is closed with
// 1008. After each attack nothing outlives the sockets: no connection, no subscription lease, no
// keep-alive timer of mercurius' (counted as the process' active timers), and the caller may hold its
// full share of sockets and subscriptions again.
import http from 'node:http'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { RawWebSocket } from './support/raw-websocket.ts'
import { activeTimers, listenForSockets, metric, until } from './support/socket-checks.ts'
import { newApiKey } from '../src/callers/api-keys.ts'

const farmer = newApiKey('farmer')
const QUERY = 'subscription { identificationCompleted { id } }'
const PER_CALLER = 5

async function listening (t: Test, env: Record<string, string> = {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = await buildTestApp(t, {
    env: {
      AUTH_MODE: 'apikey',
      API_KEY_HASHES: farmer.entry,
      HISTORY: 'off',
      SUBSCRIPTIONS_PER_CALLER: String(PER_CALLER),
      // mercurius' keep-alive timer lives as long as its socket: long enough that only a close clears it.
      SUBSCRIPTIONS_KEEPALIVE_MS: '600000',
      SUBSCRIPTIONS_MESSAGES_PER_SECOND: '1000',
      ...env
    }
  })
  return { app, url: await listenForSockets(app) }
}

/** An authenticated socket (connection_init sent plainly and acknowledged). */
async function authenticated (t: Test, url: string): Promise<RawWebSocket> {
  const socket = await RawWebSocket.connect(url)
  t.teardown(() => socket.destroy())
  socket.send({ type: 'connection_init', payload: { 'x-api-key': farmer.key } })
  await socket.waitFor(message => message.type === 'connection_ack')
  return socket
}

const subscribe = (id: string): Record<string, unknown> => ({ id, type: 'subscribe', payload: { query: QUERY } })

/**
 * Every socket gone: no connection, no lease, no timer more than before the attack; then the caller holds
 * its whole share again (PER_CALLER sockets, PER_CALLER subscriptions).
 */
async function nothingOutlives (t: Test, app: FastifyInstance, url: string, timersBefore: number): Promise<void> {
  await until(async () => await metric(app, 'agrivision_subscription_connections') === 0, 'every socket closed')
  await until(async () => await metric(app, 'agrivision_subscriptions_active') === 0, 'every lease released')
  await until(() => activeTimers() <= timersBefore, `timers back to ${timersBefore} (now ${activeTimers()})`)
  t.pass('no socket, no subscription, no timer left')
  const sockets = await Promise.all(Array.from({ length: PER_CALLER }, async () => await authenticated(t, url)))
  sockets.forEach((socket, i) => { socket.send(subscribe(`again-${i}`)) })
  await until(async () => await metric(app, 'agrivision_subscriptions_active') === PER_CALLER, 'the caller\'s whole share again')
  t.pass(`the caller holds ${PER_CALLER} sockets and subscriptions again`)
  for (const socket of sockets) socket.destroy()
  await until(async () => await metric(app, 'agrivision_subscription_connections') === 0, 'closed again')
}

t.test('a second connection_init, however spelled, closes the socket with 4429; mercurius acknowledged one', async t => {
  const { app, url } = await listening(t)
  const timersBefore = activeTimers()
  const spellings = [
    '{"type":"connection_init"}',
    '{"type":"connection\\u005finit"}',
    '{"type":"connection\\u005Finit"}',
    '{"type":"\\u0063\\u006f\\u006e\\u006e\\u0065\\u0063\\u0074\\u0069\\u006f\\u006e_init"}',
    '{"type":"ping","type":"connection_init"}',
    ' \n\t{ "type" :\r\n "connection_init" , "payload" : { } }  '
  ]
  for (const spelling of spellings) {
    const socket = await authenticated(t, url)
    socket.sendText(spelling)
    t.same(await socket.closedWithin(), { code: 4429, reason: 'Too many initialisation requests' }, spelling)
    t.equal(socket.messages.filter(message => message.type === 'connection_ack').length, 1, 'acknowledged once')
  }
  // The flood of the report: many re-inits at once on one socket (each one used to start a keep-alive timer).
  const flooded = await authenticated(t, url)
  for (let i = 0; i < 500; i++) flooded.sendText('{"type":"connection\\u005finit"}')
  t.same((await flooded.closedWithin())?.code, 4429, 'a flood of re-inits: closed at the second')
  t.equal(await metric(app, 'agrivision_subscription_refusals_total{reason="too_many_inits"}'), spellings.length + 1, 'counted')
  await nothingOutlives(t, app, url, timersBefore)
})

t.test('a repeated subscription id, however spelled, closes with 4409; the leases are released with the socket', async t => {
  const { app, url } = await listening(t)
  const timersBefore = activeTimers()
  const repeats = [
    JSON.stringify(subscribe('a')),
    `{"id":"a","type":"sub\\u0073cribe","payload":{"query":"${QUERY}"}}`,
    `{"id":"\\u0061","type":"subscribe","payload":{"query":"${QUERY}"}}`,
    `{"id":"a","type":"ping","type":"subscribe","payload":{"query":"${QUERY}"}}`,
    `{"id":"b","id":"a","type":"SUBSCRIBE","type":"subscribe","payload":{"query":"${QUERY}"}}`
  ]
  for (const repeat of repeats) {
    // The caller's whole share on one socket, then one of them again: the attack that held the gauge at 5.
    const socket = await authenticated(t, url)
    for (const id of ['a', 'b', 'c', 'd', 'e']) socket.send(subscribe(id))
    await until(async () => await metric(app, 'agrivision_subscriptions_active') === PER_CALLER, 'five running')
    socket.sendText(repeat)
    t.same(await socket.closedWithin(), { code: 4409, reason: 'Subscriber for a already exists' }, repeat)
    await until(async () => await metric(app, 'agrivision_subscriptions_active') === 0, 'released with the socket')
  }
  // The longest ids (64 bytes; a longer one is refused with 4400): their close reason fits a close frame
  // (ws throws beyond 123 bytes, which took the process down when ids were not bounded).
  const longest = ['i'.repeat(64), 'é'.repeat(32), '\u{1F69C}'.repeat(16)]
  for (const id of longest) {
    const socket = await authenticated(t, url)
    socket.send(subscribe(id))
    socket.send(subscribe(id))
    t.same(await socket.closedWithin(), { code: 4409, reason: `Subscriber for ${id} already exists` }, `an id of 64 bytes in ${id.length} UTF-16 units, twice`)
  }
  t.equal(await metric(app, 'agrivision_subscription_refusals_total{reason="duplicate_id"}'), repeats.length + longest.length, 'counted')
  await nothingOutlives(t, app, url, timersBefore)
})

t.test('what the protocol does not have closes the socket with 4400 (binary frames, legacy and unknown types, bad ids and payloads)', async t => {
  const { app, url } = await listening(t)
  const timersBefore = activeTimers()
  const valid = JSON.stringify(subscribe('x'))
  const refused: Array<[string, (socket: RawWebSocket) => void]> = [
    ['a binary frame holding a valid subscribe', socket => { socket.sendBinary(Buffer.from(valid)) }],
    ['a binary frame holding a second init', socket => { socket.sendBinary(Buffer.from('{"type":"connection_init"}')) }],
    ['a BOM before the JSON', socket => { socket.sendText(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(valid)])) }],
    ['not JSON', socket => { socket.sendText('subscribe') }],
    ['an array', socket => { socket.sendText(`[${valid}]`) }],
    ['a JSON string', socket => { socket.sendText('"ping"') }],
    ['the legacy start', socket => { socket.send({ id: 'x', type: 'start', payload: { query: QUERY } }) }],
    ['the legacy stop', socket => { socket.send({ id: 'x', type: 'stop' }) }],
    ['connection_terminate', socket => { socket.send({ type: 'connection_terminate' }) }],
    ['a type in another case', socket => { socket.send({ id: 'x', type: 'Subscribe', payload: { query: QUERY } }) }],
    ['no type', socket => { socket.send({ id: 'x', payload: { query: QUERY } }) }],
    ['a numeric id', socket => { socket.sendText(`{"id":1,"type":"subscribe","payload":{"query":"${QUERY}"}}`) }],
    ['an empty id', socket => { socket.send(subscribe('')) }],
    ['an id of 65 bytes', socket => { socket.send(subscribe('i'.repeat(65))) }],
    ['an id of 33 two-byte characters', socket => { socket.send(subscribe('é'.repeat(33))) }],
    ['a complete without id', socket => { socket.send({ type: 'complete' }) }],
    ['a query that is not text (a parsed document)', socket => { socket.send({ id: 'x', type: 'subscribe', payload: { query: { kind: 'Document', definitions: [] } } }) }],
    ['no payload', socket => { socket.send({ id: 'x', type: 'subscribe' }) }],
    ['variables that are an array', socket => { socket.send({ id: 'x', type: 'subscribe', payload: { query: QUERY, variables: [1] } }) }],
    ['a __proto__ key', socket => { socket.sendText(`{"id":"x","type":"subscribe","payload":{"query":"${QUERY}","variables":{"__proto__":{"a":1}}}}`) }],
    ['a constructor.prototype key', socket => { socket.sendText(`{"id":"x","type":"subscribe","payload":{"query":"${QUERY}","variables":{"constructor":{"prototype":{}}}}}`) }]
  ]
  for (const [what, send] of refused) {
    const socket = await authenticated(t, url)
    send(socket)
    t.same((await socket.closedWithin())?.code, 4400, what)
  }
  t.equal(await metric(app, 'agrivision_subscription_refusals_total{reason="bad_message"}'), refused.length, 'counted')
  t.equal(await metric(app, 'agrivision_subscriptions_active'), 0, 'none of them started a subscription')

  const fine = await authenticated(t, url)
  fine.sendText('{"type":"ping","payload":{"at":1}}')
  await fine.waitFor(message => message.type === 'pong')
  fine.send({ type: 'pong' })
  fine.send({ id: 'y', type: 'subscribe', payload: { query: QUERY, variables: null, operationName: null, extensions: {} } })
  await until(async () => await metric(app, 'agrivision_subscriptions_active') === 1, 'the protocol\'s own messages are served')
  t.pass('ping answered, pong taken, a subscribe with every optional field runs')
  fine.destroy()
  await nothingOutlives(t, app, url, timersBefore)
})

t.test('before connection_init: a subscribe closes with 4401; the init timeout still applies', async t => {
  const { app, url } = await listening(t, { SUBSCRIPTIONS_INIT_TIMEOUT_MS: '300' })
  const timersBefore = activeTimers()
  for (const message of [JSON.stringify(subscribe('x')), `{"id":"x","type":"sub\\u0073cribe","payload":{"query":"${QUERY}"}}`]) {
    const socket = await RawWebSocket.connect(url)
    t.teardown(() => socket.destroy())
    socket.sendText(message)
    t.same((await socket.closedWithin())?.code, 4401, message)
  }
  const pinging = await RawWebSocket.connect(url)
  t.teardown(() => pinging.destroy())
  pinging.send({ type: 'ping' })
  t.same((await pinging.closedWithin())?.code, 4408, 'pings are no connection_init')
  await nothingOutlives(t, app, url, timersBefore)
})

t.test('the legacy graphql-ws subprotocol is refused at the upgrade (400); graphql-transport-ws is chosen when offered', async t => {
  const { app, url } = await listening(t)
  const upgrade = (protocol: string | null): Promise<{ status: number, protocol: string | undefined }> => new Promise((resolve, reject) => {
    const req = http.get(url.replace('ws:', 'http:'), {
      agent: false, // a connection per upgrade: a refused one is closed by the server
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...(protocol === null ? {} : { 'sec-websocket-protocol': protocol })
      }
    })
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve({ status: res.statusCode ?? 0, protocol: res.headers['sec-websocket-protocol'] }) })
    req.on('response', res => { res.resume(); resolve({ status: res.statusCode ?? 0, protocol: undefined }) })
    req.on('error', reject)
  })
  t.same(await upgrade('graphql-ws'), { status: 400, protocol: undefined }, 'graphql-ws: 400')
  t.same(await upgrade(null), { status: 400, protocol: undefined }, 'no subprotocol (mercurius would take graphql-ws): 400')
  t.same(await upgrade('graphql-transport-wsx, graphql-ws'), { status: 400, protocol: undefined }, 'a look-alike: 400')
  t.same(await upgrade('graphql-ws, graphql-transport-ws'), { status: 101, protocol: 'graphql-transport-ws' }, 'both offered: graphql-transport-ws')
  t.same(await upgrade('graphql-transport-ws'), { status: 101, protocol: 'graphql-transport-ws' })
  t.equal(await metric(app, 'agrivision_subscription_refusals_total{reason="subprotocol"}'), 3, 'counted')

  const legacy = await RawWebSocket.connect(url, 'graphql-ws')
  t.equal(legacy.status, 400, 'a raw client offering graphql-ws is answered 400, never upgraded')
  legacy.destroy()

  t.test('a refused upgrade spends the address\'s GRAPHQL_RATE_LIMIT_PER_MINUTE as any', async t => {
    const { url } = await listening(t, { GRAPHQL_RATE_LIMIT_PER_MINUTE: '3' })
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) {
      const socket = await RawWebSocket.connect(url, 'graphql-ws')
      statuses.push(socket.status)
      socket.destroy()
    }
    t.same(statuses, [400, 400, 400, 429])
  })
})

t.test('SUBSCRIPTIONS_MESSAGES_PER_SECOND: a socket sending faster is closed with 1008; a client within it is not', async t => {
  const { app, url } = await listening(t, { SUBSCRIPTIONS_MESSAGES_PER_SECOND: '5' })
  const timersBefore = activeTimers()
  const floods: Array<[string, (socket: RawWebSocket, i: number) => void]> = [
    ['pings', socket => { socket.send({ type: 'ping' }) }],
    ['subscribe and complete', (socket, i) => { socket.send(i % 2 === 0 ? subscribe('z') : { id: 'z', type: 'complete' }) }],
    ['pongs', socket => { socket.send({ type: 'pong' }) }]
  ]
  for (const [what, send] of floods) {
    const socket = await authenticated(t, url)
    for (let i = 0; i < 20; i++) send(socket, i)
    t.same(await socket.closedWithin(), { code: 1008, reason: 'Too many messages' }, what)
  }
  const early = await RawWebSocket.connect(url)
  t.teardown(() => early.destroy())
  for (let i = 0; i < 20; i++) early.send({ type: 'ping' })
  t.same((await early.closedWithin())?.code, 1008, 'before connection_init too')
  t.equal(await metric(app, 'agrivision_subscription_refusals_total{reason="message_rate"}'), floods.length + 1, 'counted')

  const paced = await authenticated(t, url)
  for (let i = 0; i < 12; i++) {
    paced.send({ type: 'ping' })
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  await until(() => paced.messages.filter(message => message.type === 'pong').length === 12, 'every ping answered')
  t.equal(paced.socket.destroyed, false, 'four messages a second for three seconds: still open')
  paced.destroy()
  await nothingOutlives(t, app, url, timersBefore)
})

t.test('a subscription ended while it is being set up leaves no listener behind (complete at once, socket gone at once)', async t => {
  const { app, url } = await listening(t)
  const timersBefore = activeTimers()
  const shapes: Array<[string, (socket: RawWebSocket, id: string) => void]> = [
    ['subscribe then complete', (socket, id) => { socket.send(subscribe(id)); socket.send({ id, type: 'complete' }) }],
    ['subscribe and complete in one write', (socket, id) => {
      socket.sendText(JSON.stringify(subscribe(id)))
      socket.sendText(JSON.stringify({ id, type: 'complete' }))
    }],
    ['subscribe then the socket is gone', (socket, id) => { socket.send(subscribe(id)); socket.destroy() }]
  ]
  for (const [shape, end] of shapes) {
    for (let round = 0; round < 4; round++) {
      const socket = await authenticated(t, url)
      for (let i = 0; i < 20; i++) {
        if (socket.destroyed) break
        end(socket, `${round}-${i}`)
      }
      socket.destroy()
    }
    await until(async () => await metric(app, 'agrivision_subscriptions_active') === 0, `${shape}: every lease released`)
    await until(async () => await metric(app, 'agrivision_subscription_listeners') === 0, `${shape}: no listener left`)
    t.pass(`${shape}: no lease, no listener`)
  }
  await nothingOutlives(t, app, url, timersBefore)
  await until(async () => await metric(app, 'agrivision_subscription_listeners') === 0, 'the share taken again and given back: no listener')
  t.pass('no listener left')
})
