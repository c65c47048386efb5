// usage(from, to, groupBy): identifications, failures, cache hits and tokens per UTC day, caller or
// model, from the daily totals for whole days and from the records for the partial days at the ends.
import t from 'tap'
import { buildTestApp, tempDataDir } from './helper.ts'
import { identify, sendJson } from './support/http.ts'
import { jpeg, text } from './support/images.ts'
import { createSimulatedVision } from '../src/vision/simulated.ts'
import type { VisionService } from '../src/vision/types.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import { usage, usageCases } from './support/usage-cases.ts'
import { historyInternals } from '../src/history/plugin.ts'

usageCases(t, async () => ({ DATA_DIR: tempDataDir() }))

/** The simulated backend, reporting tokens as Azure would. */
function billedVision (): VisionService {
  const inner = createSimulatedVision()
  return {
    backend: 'AZURE_OPENAI',
    status: () => inner.status(),
    identify: async (request) => ({ ...await inner.identify(request), model: 'gpt-4o', usage: { promptTokens: 1000, completionTokens: 200, totalTokens: 1200 } })
  }
}

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
  await app.history!.flushed()
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
  const partial = await usage(app, range, as(alice))
  t.equal(partial.data.usage[0].identifications, 3, 'and over a partial day (from the withdrawn record\'s bare row)')
  t.equal(partial.data.usage[0].promptTokens, 2000)
  const row = await historyInternals(app.history!).store.db.selectFrom('identifications').selectAll().where('id', '=', made.body.data.identifyVehicle.id).executeTakeFirstOrThrow()
  t.strictSame([row.answer, row.vehicles, row.image, row.image_sha256, row.cache_key], [null, null, null, null, null], 'its content is erased')
})
