// The result cache: the same photo with the same question is answered from history, with no model
// call, as a new record with cached: true and no usage; anything different in the question is a miss.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { identify } from './support/http.ts'
import { jpeg } from './support/images.ts'
import { createSimulatedVision } from '../src/vision/simulated.ts'
import type { VisionService } from '../src/vision/types.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import { historyInternals } from '../src/history/plugin.ts'

function countingVision (): VisionService & { calls: number } {
  const inner = createSimulatedVision()
  const vision = {
    backend: inner.backend,
    calls: 0,
    status: () => inner.status(),
    identify: async (request: Parameters<VisionService['identify']>[0]) => { vision.calls++; return await inner.identify(request) }
  }
  return vision
}

async function ask (app: FastifyInstance, file: Buffer, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  const res = await identify(app, file, { variables: variables as never, headers })
  if (res.body.errors) throw new Error(JSON.stringify(res.body.errors))
  await app.history!.flushed() // the next lookup sees this record
  return res.body.data.identifyVehicle
}

t.test('a repeated question is a cache hit: no model call, a new record, cached: true', async t => {
  const vision = countingVision()
  const app = await buildTestApp(t, { vision, env: { RESULT_CACHE_TTL_S: '3600' } })
  const photo = await jpeg(640, 480)
  const first = await ask(app, photo)
  const second = await ask(app, photo)
  t.equal(vision.calls, 1, 'one model call for two identifications')
  t.equal(first.cached, false)
  t.equal(second.cached, true)
  t.not(second.id, first.id, 'a new identification')
  t.equal(second.answer, first.answer)
  t.strictSame(second.vehicles, first.vehicles)
  t.equal(second.usage, null, 'no tokens spent')
  const third = await ask(app, photo)
  t.equal(vision.calls, 1, 'a hit answers from the model-made record, not from another hit')
  t.equal(third.answer, first.answer)

  const rows = await historyInternals(app.history!).store.db.selectFrom('identifications').select(['id', 'cached']).execute()
  t.equal(rows.length, 3, 'every identification is recorded')
  t.equal(rows.filter(row => row.cached === 1).length, 2)
  const metrics = await app.inject('/metrics')
  t.match(metrics.payload, /agrivision_result_cache_lookups_total\{result="hit"\} 2/)
  t.match(metrics.payload, /agrivision_result_cache_lookups_total\{result="miss"\} 1/)
})

t.test('another photo, instructions, language or detail is another question', async t => {
  const vision = countingVision()
  const app = await buildTestApp(t, { vision, env: { RESULT_CACHE_TTL_S: '3600' } })
  const photo = await jpeg(640, 480)
  await ask(app, photo)
  const variants: Array<[string, Buffer, Record<string, unknown>]> = [
    ['another photo', await jpeg(641, 480), {}],
    ['instructions', photo, { instructions: 'Which make is it?' }],
    ['language', photo, { language: 'en' }],
    ['detail', photo, { detail: 'LOW' }]
  ]
  for (const [what, file, variables] of variants) {
    const calls = vision.calls
    const answer = await ask(app, file, variables)
    t.equal(answer.cached, false, what)
    t.equal(vision.calls, calls + 1, `${what}: the model is asked`)
  }
  t.equal((await ask(app, photo, { instructions: 'Which make is it?' })).cached, true, 'and each of those is cached in turn')
})

t.test('scope: per caller by default; global shares answers between callers', async t => {
  const alice = newApiKey('alice')
  const bob = newApiKey('bob')
  const env = { AUTH_MODE: 'apikey', API_KEY_HASHES: `${alice.entry},${bob.entry}`, RESULT_CACHE_TTL_S: '3600' }
  const photo = await jpeg(320, 240)

  const perCaller = countingVision()
  const app = await buildTestApp(t, { vision: perCaller, env })
  await ask(app, photo, {}, { 'x-api-key': alice.key })
  t.equal((await ask(app, photo, {}, { 'x-api-key': bob.key })).cached, false, 'bob does not get alice\'s answer')
  t.equal(perCaller.calls, 2)

  const global = countingVision()
  const shared = await buildTestApp(t, { vision: global, env: { ...env, RESULT_CACHE_SCOPE: 'global' } })
  await ask(shared, photo, {}, { 'x-api-key': alice.key })
  t.equal((await ask(shared, photo, {}, { 'x-api-key': bob.key })).cached, true, 'global: bob gets it from the cache')
  t.equal(global.calls, 1)
})

t.test('expiry and off', async t => {
  const vision = countingVision()
  const app = await buildTestApp(t, { vision, env: { RESULT_CACHE_TTL_S: '3600' } })
  const photo = await jpeg(200, 100)
  const first = await ask(app, photo)
  // Age the record past the TTL.
  await historyInternals(app.history!).store.db.updateTable('identifications').set({ created_at: Date.now() - 3601_000 }).where('id', '=', first.id).execute()
  t.equal((await ask(app, photo)).cached, false, 'an answer older than RESULT_CACHE_TTL_S is not used')
  t.equal(vision.calls, 2)

  const off = countingVision()
  const noCache = await buildTestApp(t, { vision: off, env: { RESULT_CACHE_TTL_S: '0' } })
  await ask(noCache, photo)
  t.equal((await ask(noCache, photo)).cached, false, 'RESULT_CACHE_TTL_S=0: off')
  t.equal(off.calls, 2)
  t.equal(historyInternals(noCache.history!).answers, null)
})

t.test('a failed lookup (database gone) is a miss, not a failed identification', async t => {
  const vision = countingVision()
  const app = await buildTestApp(t, { vision, env: { RESULT_CACHE_TTL_S: '3600' } })
  const photo = await jpeg(200, 100)
  await ask(app, photo)
  await historyInternals(app.history!).store.db.schema.dropTable('identification_makes').execute() // breaks nothing the lookup needs...
  await historyInternals(app.history!).store.db.schema.alterTable('identifications').renameTo('identifications_gone').execute() // ...this does
  const res = await identify(app, photo)
  t.notOk(res.body.errors, 'still answered')
  t.equal(res.body.data.identifyVehicle.cached, false)
  t.equal(vision.calls, 2)
})

t.test('a withdrawn (deleted) identification is never served from the cache', async t => {
  const vision = countingVision()
  const app = await buildTestApp(t, { vision, env: { RESULT_CACHE_TTL_S: '3600' } })
  const photo = await jpeg(300, 200)
  const first = await ask(app, photo)
  const deleted = await app.inject({ method: 'POST', url: '/graphql', payload: { query: `mutation { deleteIdentification(id: "${first.id}") }` } })
  t.equal(deleted.json().data.deleteIdentification, true)
  t.equal((await ask(app, photo)).cached, false, 'asked the model again')
  t.equal(vision.calls, 2)
})
