// The subscriptions' pure parts: the live filter (the meaning `identifications` gives IdentificationFilter),
// the limits' leases, the compact message and back, and TOO_MANY_SUBSCRIPTIONS in the error catalogue.
import t from 'tap'
import { matches, type LiveFilter } from '../src/subscriptions/filter.ts'
import { SubscriptionLimits } from '../src/subscriptions/limits.ts'
import { identificationOf, messageOf, type CompletedMessage } from '../src/subscriptions/payload.ts'
import { TooManySubscriptionsError } from '../src/errors.ts'
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
    image: { sha256: 'ab', mimeType: 'image/jpeg', bytes: 1, width: 1, height: 1, sentMimeType: 'image/jpeg', sentBytes: 1, sentWidth: 1, sentHeight: 1, estimatedImageTokens: 85 },
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
