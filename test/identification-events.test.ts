// The identification seam: a capability subscribes to started/completed/failed and learns who asked
// and what came of it; a subscriber that fails never breaks the identification.
import t from 'tap'
import { buildTestApp } from './helper.ts'
import { identify } from './support/http.ts'
import * as images from './support/images.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import type { IdentificationEventMap } from '../src/identification/events.ts'

const farmer = newApiKey('farmer')

t.test('started, then completed with the result and the caller; failed with the code', async t => {
  const app = await buildTestApp(t, { env: { AUTH_MODE: 'apikey', API_KEY_HASHES: farmer.entry } })
  const seen: Array<{ name: keyof IdentificationEventMap, event: any }> = []
  for (const name of ['started', 'completed', 'failed'] as const) {
    app.identificationEvents.on(name, event => { seen.push({ name, event }) })
  }
  const ok = await identify(app, await images.jpeg(64, 48), { headers: { 'x-api-key': farmer.key } })
  t.equal(ok.statusCode, 200)
  t.same(seen.map(s => s.name), ['started', 'completed'])
  const completed = seen[1]?.event
  t.equal(completed.caller.id, 'farmer')
  t.equal(completed.identification.id, ok.body.data.identifyVehicle.id, 'the same id the caller got')
  t.ok(completed.requestId, 'the request id, for the log')

  seen.length = 0
  const bad = await identify(app, images.text, { headers: { 'x-api-key': farmer.key } })
  t.equal(bad.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT')
  t.same(seen.map(s => s.name), ['started', 'failed'])
  t.equal(seen[1]?.event.code, 'BAD_USER_INPUT')
  t.equal(seen[1]?.event.caller.id, 'farmer')
})

t.test('a subscriber that throws or rejects does not break the identification', async t => {
  const app = await buildTestApp(t)
  app.identificationEvents.on('completed', () => { throw new Error('history is down') })
  app.identificationEvents.on('completed', async () => { throw new Error('webhook store is down') })
  let later = 0
  const off = app.identificationEvents.on('completed', () => { later++ })
  const res = await identify(app, await images.jpeg(64, 48))
  t.equal(res.statusCode, 200)
  t.ok(res.body.data.identifyVehicle.id)
  t.equal(later, 1, 'the other subscribers still run')
  off()
  await identify(app, await images.jpeg(64, 48))
  t.equal(later, 1, 'unsubscribed')
})

t.test('a durable subscriber makes the answer wait for it (bounded by itself); a failing one does not break it', async t => {
  const app = await buildTestApp(t)
  let release: () => void = () => {}
  let called: () => void = () => {}
  const durableCalled = new Promise<void>(resolve => { called = resolve })
  app.identificationEvents.onDurable('completed', async () => {
    called()
    await new Promise<void>(resolve => { release = resolve })
  })
  app.identificationEvents.onDurable('completed', async () => { throw new Error('its store is down') })
  let answered = false
  const pending = identify(app, await images.jpeg(64, 48)).then(res => { answered = true; return res })
  await durableCalled
  await new Promise(resolve => setTimeout(resolve, 100))
  t.notOk(answered, 'the answer waits for the durable subscriber')
  release()
  const res = await pending
  t.equal(res.statusCode, 200)
  t.ok(res.body.data.identifyVehicle.id, 'then it is answered, the failing subscriber notwithstanding')
})
