// usage(from, to, groupBy): identifications, failures, cache hits and tokens per UTC day, caller or
// model, from the daily totals for whole days and from the records for the partial days at the ends.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { identify, sendJson } from './support/http.ts'
import { jpeg, text } from './support/images.ts'
import { createSimulatedVision } from '../src/vision/simulated.ts'
import type { VisionService } from '../src/vision/types.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import type { HistoryRecord } from '../src/history/records.ts'

const USAGE = `query ($from: DateTime!, $to: DateTime!, $groupBy: UsageGrouping) {
  usage(from: $from, to: $to, groupBy: $groupBy) { key identifications failed cached promptTokens completionTokens estimatedCost }
}`

/** The simulated backend, reporting tokens as Azure would. */
function billedVision (): VisionService {
  const inner = createSimulatedVision()
  return {
    backend: 'AZURE_OPENAI',
    status: () => inner.status(),
    identify: async (request) => ({ ...await inner.identify(request), model: 'gpt-4o', usage: { promptTokens: 1000, completionTokens: 200, totalTokens: 1200 } })
  }
}

function record (overrides: Partial<HistoryRecord>): HistoryRecord {
  return {
    id: crypto.randomUUID(),
    callerId: 'anonymous', // the caller of an app with AUTH_MODE=none
    callerKind: 'anonymous',
    createdAt: new Date(),
    outcome: 'OK',
    cached: false,
    language: 'ru',
    detail: 'auto',
    backend: 'AZURE_OPENAI',
    model: 'gpt-4o',
    answer: 'Трактор',
    vehicles: [{ category: 'TRACTOR', kind: 'MACHINE', make: 'Беларус', model: '82.1', confidence: 'HIGH', evidence: ['badge'] }],
    image: null,
    promptTokens: 100,
    completionTokens: 10,
    durationMs: 5,
    cacheKey: null,
    ...overrides
  }
}

async function usage (app: FastifyInstance, variables: Record<string, unknown>, headers: Record<string, string> = {}) {
  return (await sendJson(app, { query: USAGE, variables }, headers)).body
}

t.test('whole days from the daily totals, partial days from the records, exact at the edges', async t => {
  const app = await buildTestApp(t)
  const store = app.history!.store
  const at = (iso: string) => new Date(iso)
  for (const createdAt of ['2026-11-01T00:00:00.000Z', '2026-11-01T12:00:00.000Z', '2026-11-02T23:59:59.999Z', '2026-11-03T06:00:00.000Z']) {
    await store.insert(record({ createdAt: at(createdAt) }))
  }
  await store.insert(record({ createdAt: at('2026-11-02T10:00:00.000Z'), outcome: 'UPSTREAM_TIMEOUT', model: null, promptTokens: 0, completionTokens: 0 }))
  await store.insert(record({ createdAt: at('2026-11-02T11:00:00.000Z'), cached: true, promptTokens: 0, completionTokens: 0 }))

  const whole = await usage(app, { from: '2026-11-01T00:00:00Z', to: '2026-11-04T00:00:00Z' })
  t.strictSame(whole.data.usage.map((b: any) => [b.key, b.identifications, b.failed, b.cached, b.promptTokens, b.completionTokens]), [
    ['2026-11-01', 2, 0, 0, 200, 20],
    ['2026-11-02', 3, 1, 1, 100, 10],
    ['2026-11-03', 1, 0, 0, 100, 10]
  ])
  t.equal(whole.data.usage[0].estimatedCost, null, 'no prices set: no cost')

  const partial = await usage(app, { from: '2026-11-01T06:00:00Z', to: '2026-11-03T06:00:00Z' })
  t.strictSame(partial.data.usage.map((b: any) => [b.key, b.identifications]), [['2026-11-01', 1], ['2026-11-02', 3]],
    'from 06:00 leaves out the midnight record; to is exclusive')
  const hour = await usage(app, { from: '2026-11-02T23:00:00Z', to: '2026-11-03T00:00:00Z' })
  t.strictSame(hour.data.usage.map((b: any) => [b.key, b.identifications]), [['2026-11-02', 1]], 'within one day')

  const byModel = await usage(app, { from: '2026-11-01T00:00:00Z', to: '2026-11-04T00:00:00Z', groupBy: 'MODEL' })
  t.strictSame(byModel.data.usage.map((b: any) => [b.key, b.identifications, b.failed]), [['', 1, 1], ['gpt-4o', 5, 0]])

  for (const variables of [{ from: '2026-11-02T00:00:00Z', to: '2026-11-01T00:00:00Z' }, { from: '2024-01-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }]) {
    t.equal((await usage(app, variables)).errors?.[0]?.extensions.code, 'BAD_USER_INPUT', JSON.stringify(variables))
  }
})

t.test('through identifications: tokens, failures, prices; own usage, everyone\'s with ReadAll; deleting keeps the cost', async t => {
  const alice = newApiKey('alice')
  const bob = newApiKey('bob')
  const dashboard = newApiKey('dashboard')
  const app = await buildTestApp(t, {
    vision: billedVision(),
    env: {
      AUTH_MODE: 'apikey',
      API_KEY_HASHES: [alice.entry, bob.entry, `${dashboard.entry}:VehicleIdentification.ReadAll`].join(','),
      VISION_PRICE_INPUT_PER_MTOK: '2.5',
      VISION_PRICE_OUTPUT_PER_MTOK: '10'
    }
  })
  const as = (key: { key: string }) => ({ 'x-api-key': key.key })
  const made = await identify(app, await jpeg(64, 48), { headers: as(alice) })
  await identify(app, await jpeg(65, 48), { headers: as(alice) })
  await identify(app, text, { headers: as(alice) })
  await identify(app, await jpeg(66, 48), { headers: as(bob) })
  await app.history!.recorder.flushed()
  const range = { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3_600_000).toISOString() }

  const own = await usage(app, { ...range, groupBy: 'CALLER' }, as(alice))
  t.strictSame(own.data.usage, [{ key: 'alice', identifications: 3, failed: 1, cached: 0, promptTokens: 2000, completionTokens: 400, estimatedCost: 0.009 }],
    '2,000 × 2.5 + 400 × 10 per million')
  const all = await usage(app, { ...range, groupBy: 'CALLER' }, as(dashboard))
  t.strictSame(all.data.usage.map((b: any) => [b.key, b.identifications]), [['alice', 3], ['bob', 1]])

  const deleted = await sendJson(app, { query: 'mutation ($id: ID!) { deleteIdentification(id: $id) }', variables: { id: made.body.data.identifyVehicle.id } }, as(alice))
  t.equal(deleted.body.data.deleteIdentification, true)
  const day = new Date().toISOString().slice(0, 10)
  const dayRange = { from: `${day}T00:00:00Z`, to: new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString() }
  const after = await usage(app, dayRange, as(alice))
  t.equal(after.data.usage[0].identifications, 3, 'a deleted identification still counts (from the daily totals)')
})
