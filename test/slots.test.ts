// Vision slots are shared fairly, whatever the capacity: a freed slot goes to the waiting caller that
// holds the fewest, a lone caller may use them all, one caller cannot fill the queue, and the slots are
// taken by the identification flow (so every entry point shares them), not while a body is received.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import { AdmissionGate, type AdmissionRefusal, type Release } from '../src/limits/admission.ts'
import { identifyVehicle } from '../src/identification/flow.ts'
import { IdentificationEvents } from '../src/identification/events.ts'
import { createImagePipeline } from '../src/image/pipeline.ts'
import { createSimulatedVision } from '../src/vision/simulated.ts'
import type { IdentifyRequest, VisionService } from '../src/vision/types.ts'
import { testConfig } from './helper.ts'
import { pino } from 'pino'

const photo = await images.jpeg(64, 48)
const alice = newApiKey('alice')
const bob = newApiKey('bob')

const tick = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

/** Who got a slot, in order, from acquisitions started now. */
function recorder (gate: AdmissionGate) {
  const order: string[] = []
  const releases = new Map<string, Release>()
  const outcomes = new Map<string, string>()
  const take = (share: string, label: string): Promise<void> => gate.acquire(share).then(release => {
    order.push(label)
    releases.set(label, release)
    outcomes.set(label, 'granted')
  }, (err: { code: string }) => { outcomes.set(label, err.code) })
  return { order, releases, outcomes, take }
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
  t.equal(gate.active, 1, 'the queued one got a slot')
})

t.test('a lone caller uses every slot; a freed slot goes to the waiting caller holding the fewest', async t => {
  const gate = new AdmissionGate({ maxConcurrency: 2, maxConcurrencyPerCaller: 4, queueSize: 4, queueTimeoutMs: 5000 })
  const r = recorder(gate)
  await r.take('a', 'a1')
  await r.take('a', 'a2')
  t.same(r.order, ['a1', 'a2'], 'nobody else waits: the lone caller gets both slots')
  const waiting = [r.take('a', 'a3'), r.take('b', 'b1')] // a3 asked first
  await tick()
  t.equal(gate.queued, 2)
  r.releases.get('a1')?.()
  await tick()
  t.same(r.order, ['a1', 'a2', 'b1'], 'b (holding none) gets the freed slot before a\'s earlier request')
  r.releases.get('a2')?.()
  await Promise.all(waiting)
  t.same(r.order, ['a1', 'a2', 'b1', 'a3'], 'then a again: nobody else waits')
  t.equal(gate.heldBy('a'), 1)
  t.equal(gate.heldBy('b'), 1)
})

t.test('capacity 2: a caller holding one gets no second while another caller waits, in either order of arrival', async t => {
  for (const aliceFirst of [true, false]) {
    const gate = new AdmissionGate({ maxConcurrency: 2, maxConcurrencyPerCaller: 4, queueSize: 4, queueTimeoutMs: 5000 })
    const r = recorder(gate)
    await r.take('alice', 'alice1')
    await r.take('carol', 'carol1')
    const waiting = aliceFirst ? [r.take('alice', 'alice2'), r.take('bob', 'bob1')] : [r.take('bob', 'bob1'), r.take('alice', 'alice2')]
    await tick()
    r.releases.get('carol1')?.()
    await tick()
    t.equal(r.order[2], 'bob1', `alice ${aliceFirst ? 'asked first' : 'asked second'}: bob gets the freed slot`)
    r.releases.get('alice1')?.()
    await Promise.all(waiting)
    t.equal(r.order[3], 'alice2')
    for (const release of r.releases.values()) release()
    t.equal(gate.active, 0)
  }
})

t.test('one caller cannot fill the queue: a newcomer takes the place of its newest waiter', async t => {
  const refusals: AdmissionRefusal[] = []
  // The review's numbers: 2 slots, a queue of 2, a per-caller cap of 4 = the whole capacity.
  const options = { maxConcurrency: 2, maxConcurrencyPerCaller: 4, queueSize: 2, queueTimeoutMs: 5000 }
  const gate = new AdmissionGate(options, { refused: reason => refusals.push(reason) })
  const r = recorder(gate)
  await r.take('a', 'a1')
  await r.take('a', 'a2')
  const waiting = [r.take('a', 'a3'), r.take('a', 'a4')]
  await tick()
  t.equal(gate.queued, 2, 'a holds both slots and fills the queue')
  const b1 = r.take('b', 'b1')
  await tick()
  t.equal(r.outcomes.get('a4'), 'RATE_LIMITED', 'a\'s newest waiter is refused (429)')
  t.equal(gate.queued, 2, 'b waits in its place')
  const c1 = r.take('c', 'c1')
  await tick()
  t.equal(r.outcomes.get('a3'), 'RATE_LIMITED', 'and for a third caller, a\'s other waiter')
  const d1 = r.take('d', 'd1')
  await tick()
  t.equal(r.outcomes.get('d1'), 'OVERLOADED', 'nobody has two more than d: the queue is full (503)')
  r.releases.get('a1')?.()
  await b1
  r.releases.get('a2')?.()
  await c1
  await Promise.all([...waiting, d1])
  t.same(r.order, ['a1', 'a2', 'b1', 'c1'])
  t.same(refusals, ['fair_share', 'fair_share', 'queue_full'])
})

t.test('no queue: refused at once; a waiter that goes away or times out leaves no trace', async t => {
  const none = new AdmissionGate({ maxConcurrency: 1, maxConcurrencyPerCaller: 4, queueSize: 0, queueTimeoutMs: 5000 })
  const held = await none.acquire('a')
  await t.rejects(none.acquire('b'), { code: 'OVERLOADED', statusCode: 503, retryAfterSeconds: 2 })
  held()

  const gate = new AdmissionGate({ maxConcurrency: 1, maxConcurrencyPerCaller: 2, queueSize: 4, queueTimeoutMs: 200 })
  const first = await gate.acquire('a')
  const controller = new AbortController()
  const gone = gate.acquire('b', controller.signal)
  controller.abort(new Error('client went away'))
  await t.rejects(gone, /client went away/)
  await t.rejects(gate.acquire('b'), { code: 'OVERLOADED' }, 'the wait times out')
  await t.rejects(gate.acquire('c', AbortSignal.abort(new Error('gone already'))), /gone already/)
  t.equal(gate.queued, 0)
  // b's abandoned and timed-out waits are not counted for it: it may still wait twice.
  const b1 = gate.acquire('b')
  const b2 = gate.acquire('b')
  first()
  const granted = await b1
  t.equal(gate.heldBy('b'), 1)
  granted()
  const second = await b2
  second()
  t.equal(gate.active, 0)
})

/** A vision backend whose every call waits for the test: calls are tagged by their `instructions`. */
function heldVision () {
  const inner = createSimulatedVision()
  const calls: Array<{ tag: string, finish: () => void }> = []
  let arrived = (): void => {}
  const vision: VisionService = {
    backend: inner.backend,
    status: () => inner.status(),
    async identify (request: IdentifyRequest) {
      await new Promise<void>(resolve => {
        calls.push({ tag: request.instructions, finish: resolve })
        arrived()
      })
      return await inner.identify(request)
    }
  }
  /** Resolves once `n` calls have arrived in all. */
  const until = async (n: number): Promise<void> => {
    const deadline = Date.now() + 5000
    while (calls.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${calls.length} of ${n} calls arrived`)
      await new Promise<void>(resolve => { arrived = resolve; setTimeout(resolve, 50) })
    }
  }
  return { vision, calls, until }
}

async function send (app: FastifyInstance, key: string, tag: string) {
  const body = await identifyBody(photo, { instructions: tag })
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: body.payload, headers: { ...body.headers, 'x-api-key': key } })
  return { status: res.statusCode, code: res.json().errors?.[0]?.extensions?.code as string | undefined }
}

t.test('over HTTP: the identification flow takes the slots, fairly', async t => {
  const held = heldVision()
  const app = await buildTestApp(t, {
    vision: held.vision,
    env: { AUTH_MODE: 'apikey', API_KEY_HASHES: `${alice.entry},${bob.entry}`, VISION_MAX_CONCURRENCY: '2', VISION_QUEUE_SIZE: '2', VISION_MAX_CONCURRENCY_PER_CALLER: '4' }
  })
  const a1 = send(app, alice.key, 'a1')
  const a2 = send(app, alice.key, 'a2')
  await held.until(2)
  const a3 = send(app, alice.key, 'a3')
  await new Promise(resolve => setTimeout(resolve, 100)) // a3 waits first
  const b1 = send(app, bob.key, 'b1')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.same(held.calls.map(c => c.tag), ['a1', 'a2'], 'two slots, two calls')
  held.calls[0]?.finish()
  await held.until(3)
  t.equal(held.calls[2]?.tag, 'b1', 'the freed slot went to bob, who held none, not to alice\'s earlier request')
  held.calls[1]?.finish()
  await held.until(4)
  t.equal(held.calls[3]?.tag, 'a3')
  for (const call of held.calls) call.finish()
  t.same((await Promise.all([a1, a2, a3, b1])).map(r => r.status), [200, 200, 200, 200])
})

t.test('another entry point (the flow called directly, as a bulk job would) takes the same slots', async t => {
  const held = heldVision()
  const gate = new AdmissionGate({ maxConcurrency: 1, maxConcurrencyPerCaller: 4, queueSize: 0, queueTimeoutMs: 1000 })
  const config = testConfig()
  const deps = { vision: held.vision, images: createImagePipeline(config.images), events: new IdentificationEvents(pino({ level: 'silent' })), admission: gate, adaptive: { minConfidence: 'MEDIUM' as const, budgetMs: 1000 } }
  const caller = { kind: 'apikey' as const, id: 'batch', roles: new Set(['Identify' as const]) }
  const input = { image: photo, instructions: 'bulk', language: 'en', detail: 'auto' as const, signal: new AbortController().signal }
  const running = identifyVehicle(deps, { caller, requestId: 'job-1' }, input)
  await held.until(1)
  t.equal(gate.active, 1, 'the running identification holds the slot')
  await t.rejects(identifyVehicle(deps, { caller, requestId: 'job-2' }, input), { code: 'OVERLOADED' }, 'the only slot is taken')
  held.calls[0]?.finish()
  const done = await running
  t.equal(done.callerId, 'batch')
  t.equal(gate.active, 0, 'and given back when the model has answered')
})
