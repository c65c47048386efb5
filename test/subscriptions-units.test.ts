// The subscriptions' pure parts: the live filter (the meaning `identifications` gives IdentificationFilter),
// the limits' leases, the compact message and back, TOO_MANY_SUBSCRIPTIONS in the error catalogue, and
// a socket that closes while its caller is being verified, a refused socket's context that never comes (over
// a stand-in socket), a client message read once into its canonical form, and the message rate.
import { EventEmitter } from 'node:events'
import t from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from '@fastify/websocket'
import { Connections, type ConnectionRefusal } from '../src/subscriptions/connections.ts'
import type { Caller } from '../src/callers/caller.ts'
import { matches, type LiveFilter } from '../src/subscriptions/filter.ts'
import { SubscriptionLimits } from '../src/subscriptions/limits.ts'
import { identificationOf, messageOf, type CompletedMessage } from '../src/subscriptions/payload.ts'
import { TooManySubscriptionsError, UnauthenticatedError } from '../src/errors.ts'
import { BadMessageError, MAX_ID_BYTES, parseClientMessage, serialise } from '../src/subscriptions/messages.ts'
import { MessageRate } from '../src/subscriptions/message-rate.ts'
import { countQueued, eventSizes } from '../src/subscriptions/queued.ts'
import type { IdentificationCompleted } from '../src/identification/events.ts'
import type { DetectedVehicle } from '../src/vision/answer-schema.ts'

const vehicle = (category: DetectedVehicle['category'], make: string | null): DetectedVehicle =>
  ({ category, kind: 'MACHINE', make, model: null, confidence: 'HIGH', evidence: [] })

function message (overrides: Partial<CompletedMessage> = {}): CompletedMessage {
  return {
    id: 'a1',
    callerId: 'farmer',
    answer: 'A John Deere tractor beside a CLAAS combine.',
    vehicles: [vehicle('TRACTOR', 'John Deere'), vehicle('COMBINE_HARVESTER', 'CLAAS')],
    language: 'en',
    backend: 'SIMULATED',
    model: 'simulated',
    backendName: null,
    bulkJobId: null,
    image: { sha256: 'ab', mimeType: 'image/jpeg', bytes: 1, width: 1, height: 1, sentMimeType: 'image/jpeg', sentBytes: 1, sentWidth: 1, sentHeight: 1, estimatedImageTokens: 85, detailUsed: 'LOW', looks: 1 },
    detailUsed: 'LOW',
    looks: 1,
    usage: null,
    cached: false,
    durationMs: 12,
    createdAt: Date.parse('2026-12-01T10:00:00Z'),
    ...overrides
  }
}

const none: LiveFilter = { callerId: null, category: null, make: null, from: null, to: null }

t.test('the live filter', async t => {
  t.ok(matches(message(), none), 'no filter: everything')
  t.ok(matches(message(), { ...none, callerId: 'farmer' }), 'the caller\'s own')
  t.notOk(matches(message(), { ...none, callerId: 'neighbour' }), 'not another caller\'s')
  t.ok(matches(message(), { ...none, category: 'COMBINE_HARVESTER' }), 'any vehicle of the category')
  t.notOk(matches(message(), { ...none, category: 'BALER_HAY_TOOL' }))
  t.ok(matches(message(), { ...none, make: 'john deere' }), 'the make as makeKey compares it')
  t.ok(matches(message(), { ...none, category: 'TRACTOR', make: 'john deere' }), 'a John Deere tractor')
  t.notOk(matches(message(), { ...none, category: 'COMBINE_HARVESTER', make: 'john deere' }), 'not a John Deere tractor beside a combine')
  t.notOk(matches(message({ vehicles: [vehicle('TRACTOR', null)] }), { ...none, make: 'john deere' }), 'a vehicle of no make matches no make')
  const at = message().createdAt
  t.ok(matches(message(), { ...none, from: at }), 'from is inclusive')
  t.notOk(matches(message(), { ...none, to: at }), 'to is exclusive')
  t.ok(matches(message(), { ...none, from: at - 1, to: at + 1 }))
})

t.test('leases: per caller, in all, released once', async t => {
  const refused: string[] = []
  const limits = new SubscriptionLimits(2, 3, reason => refused.push(reason))
  const a1 = limits.acquire('a')
  limits.acquire('a')
  t.throws(() => limits.acquire('a'), TooManySubscriptionsError, 'the caller\'s third')
  limits.acquire('b')
  t.throws(() => limits.acquire('c'), { code: 'OVERLOADED' }, 'the fourth in all')
  t.equal(limits.active, 3)
  a1()
  a1()
  t.equal(limits.active, 2, 'a release counts once')
  limits.acquire('c')
  t.same(refused, ['per_caller', 'max_subscriptions'])
})

t.test('the message: JSON-safe, and back as the API shows it', async t => {
  const createdAt = new Date('2026-12-01T10:00:00Z')
  const { createdAt: _at, ...rest } = message()
  const event = { identification: { ...rest, createdAt }, sentImage: Buffer.from('bytes') } as unknown as IdentificationCompleted
  const sent = messageOf(event)
  t.same(JSON.parse(JSON.stringify(sent)), sent, 'survives JSON (and so msgpack)')
  t.notOk(JSON.stringify(sent).includes('Ynl0ZXM') || 'sentImage' in sent, 'no image bytes')
  const back = identificationOf(sent)
  t.same(back.createdAt, createdAt)
  t.equal(back.hasThumbnail, false)
})

t.test('TOO_MANY_SUBSCRIPTIONS in the catalogue', async t => {
  const err = new TooManySubscriptionsError(5)
  t.same([err.code, err.statusCode, err.extensions, err.name], ['TOO_MANY_SUBSCRIPTIONS', 429, { code: 'TOO_MANY_SUBSCRIPTIONS', limit: 5 }, 'TooManySubscriptionsError'])
})

/** What Connections uses of a ws socket. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1
  readonly CLOSED = 3
  readonly protocol = 'graphql-transport-ws'
  readonly bufferedAmount = 0
  readyState = 1
  readonly closes: Array<[number | undefined, string | undefined]> = []
  send (): void {}
  close (code?: number, reason?: string): void {
    this.closes.push([code, reason])
    this.hangUp()
  }

  /** The peer went away. */
  hangUp (): void {
    if (this.readyState === this.CLOSED) return
    this.readyState = this.CLOSED
    this.emit('close')
  }
}

t.test('a socket closed while its caller is verified: no expiry timer, no refusal, not counted for the caller', async t => {
  const refused: ConnectionRefusal[] = []
  const pending: Array<(caller: Caller) => void> = []
  const connections = new Connections({
    verify: async () => await new Promise<Caller>(resolve => pending.push(resolve)),
    log: { info () {}, warn () {}, error () {} } as unknown as FastifyBaseLogger,
    production: false,
    initTimeoutMs: 10_000,
    maxConnections: 10,
    socketsPerCaller: 1,
    idleTimeoutMs: 60_000,
    messagesPerSecond: 10,
    maxQueuedBytes: 1_048_576,
    refused: reason => refused.push(reason)
  })
  const caller = (): Caller => ({ kind: 'entra-user', id: 'farmer', roles: new Set(['Identify']), expiresAt: new Date(Date.now() + 50) } as Caller)
  const init = Buffer.from(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer x' } }))

  const gone = new FakeSocket()
  connections.track(gone as unknown as WebSocket)
  gone.emit('message', init, false)
  gone.hangUp() // while verify() runs
  pending.shift()!(caller())
  await new Promise(resolve => setTimeout(resolve, 150)) // past the token's expiry
  t.same(refused, [], 'no spurious `expired` refusal')
  t.same(gone.closes, [], 'the closed socket is not closed again')
  t.equal(connections.open, 0)

  const next = new FakeSocket()
  connections.track(next as unknown as WebSocket)
  next.emit('message', init, false)
  pending.shift()!(caller())
  const accepted = await connections.caller(next as unknown as WebSocket)
  t.equal(accepted?.caller.id, 'farmer', 'the caller\'s next socket is accepted: the closed one did not count')
  next.hangUp()
})

t.test('a client message: parsed once into its canonical form, whatever the spelling', async t => {
  const query = 'subscription { identificationCompleted { id } }'
  t.same(parseClientMessage('{"type":"connection\\u005Finit","payload":{"x-api-key":"k"}}'), { type: 'connection_init', payload: { 'x-api-key': 'k' } })
  t.same(parseClientMessage('{"type":"ping","type":"connection_init"}'), { type: 'connection_init', payload: null }, 'duplicate keys: the last, as JSON.parse (and mercurius) reads it')
  t.same(parseClientMessage(`{"id":"\\u0061","type":"sub\\u0073cribe","payload":{"query":"${query}","extensions":{"x":1},"extra":1},"extra":2}`),
    { type: 'subscribe', id: 'a', payload: { query, variables: null, operationName: null } }, 'escapes read; extensions and unknown fields not passed on')
  t.same(parseClientMessage('{"type":"ping","payload":{"a":1}}'), { type: 'ping' })
  t.same(parseClientMessage('{"type":"complete","id":"a"}'), { type: 'complete', id: 'a' })
  t.equal(serialise({ type: 'connection_init', payload: { authorization: 'Bearer secret' } }), '{"type":"connection_init"}', 'mercurius never gets the credentials')
  t.equal(serialise(parseClientMessage(`{"type":"subscribe","id":"b","payload":{"query":"${query}","variables":{"f":1}}}`)),
    `{"type":"subscribe","id":"b","payload":{"query":"${query}","variables":{"f":1},"operationName":null}}`)
  const refused = [
    '\ufeff{"type":"ping"}', '{"type":"ping"', 'null', '[]', '1', '{"type":"PING"}', '{"type":"start","id":"a","payload":{"query":"x"}}',
    '{"type":"subscribe","id":7,"payload":{"query":"x"}}', `{"type":"subscribe","id":"${'i'.repeat(MAX_ID_BYTES + 1)}","payload":{"query":"x"}}`,
    '{"type":"subscribe","id":"a","payload":{"query":{"kind":"Document"}}}', '{"type":"subscribe","id":"a","payload":{"query":"x","operationName":1}}',
    '{"type":"subscribe","id":"a","payload":{"query":"x","extensions":[]}}', '{"type":"connection_init","payload":"token"}',
    '{"type":"subscribe","id":"a","payload":{"query":"x","variables":{"__proto__":{}}}}', '{"type":"ping","constructor":{"prototype":{}}}'
  ]
  for (const text of refused) t.throws(() => parseClientMessage(text), BadMessageError, text)
  t.doesNotThrow(() => parseClientMessage(`{"type":"complete","id":"${'i'.repeat(MAX_ID_BYTES)}"}`), 'an id of MAX_ID_BYTES')
})

t.test('the message rate: a burst of `perSecond`, then `perSecond` a second', async t => {
  let now = 0
  const rate = new MessageRate(5, () => now)
  t.same(Array.from({ length: 6 }, () => rate.take()), [true, true, true, true, true, false], 'a burst of 5')
  now += 200
  t.same([rate.take(), rate.take()], [true, false], 'one more after 200 ms')
  now += 10_000
  t.same(Array.from({ length: 6 }, () => rate.take()), [true, true, true, true, true, false], 'no more than a burst saved up')
})

t.test('a refused socket: mercurius\' context never comes (so it neither acknowledges nor starts a keep-alive timer)', async t => {
  const refused: ConnectionRefusal[] = []
  const connections = new Connections({
    verify: async () => { throw new UnauthenticatedError('no') },
    log: { info () {}, warn () {}, error () {} } as unknown as FastifyBaseLogger,
    production: false,
    initTimeoutMs: 10_000,
    maxConnections: 10,
    socketsPerCaller: 1,
    idleTimeoutMs: 60_000,
    messagesPerSecond: 10,
    maxQueuedBytes: 1_048_576,
    refused: reason => refused.push(reason)
  })
  const socket = new FakeSocket()
  connections.track(socket as unknown as WebSocket)
  const heard: unknown[] = []
  socket.on('message', (data: Buffer) => heard.push(JSON.parse(data.toString())))
  socket.emit('message', Buffer.from('{"type":"connection\\u005finit","payload":{"x-api-key":"wrong"}}'), false)
  t.same(heard, [{ type: 'connection_init' }], 'mercurius hears the canonical message, without the credentials')
  const context = connections.caller(socket as unknown as WebSocket).then(() => 'resolved', () => 'rejected')
  const outcome = await Promise.race([context, new Promise(resolve => setTimeout(() => resolve('pending'), 100))])
  t.equal(outcome, 'pending', 'never settles')
  t.same(socket.closes, [[4401, 'Unauthorized']])
  t.same(refused, ['unauthenticated'])
  socket.emit('message', Buffer.from('{"type":"ping"}'), false)
  t.equal(heard.length, 1, 'nothing more reaches mercurius from a closed socket')
})

t.test('a queue counted in its socket\'s backlog: pushed until taken, dropped when refused, nothing left at the end', async t => {
  let queued = 0
  let room = 100
  const backlog = {
    add: (bytes: number) => { if (queued + bytes > room) return false; queued += bytes; return true },
    remove: (bytes: number) => { queued -= bytes }
  }
  const pushed: unknown[] = []
  const queue = { push: (chunk: unknown) => { pushed.push(chunk); return true } }
  const sizeOf = eventSizes()
  const count = countQueued(queue, backlog, sizeOf)
  const a = { answer: 'x'.repeat(20) }
  const b = { answer: 'y'.repeat(40) }
  t.equal(sizeOf(a), JSON.stringify(a).length, 'an event counts its JSON')
  queue.push(a)
  queue.push(b)
  t.equal(queued, sizeOf(a) + sizeOf(b))
  t.equal(queue.push({ answer: 'z'.repeat(80) }), false, 'beyond the backlog: refused')
  t.same(pushed, [a, b], 'and dropped')
  count.taken(a)
  t.equal(queued, sizeOf(b), 'taken: no longer counted')
  room = 1000
  queue.push(a)
  count.end()
  t.equal(queued, 0, 'ended: what the queue held no longer counts')
  queue.push(null)
  t.equal(pushed.at(-1), null, 'the end of the stream passes')
})
