// Several deployments as callers and operators see them: Identification.backendName (also in history),
// `vision { backends }` for the Admin role only, per-backend metrics, and readiness.
import t from 'tap'
import { sha256Hex } from '../src/callers/api-keys.ts'
import { buildRegionsApp, startRegions } from './support/regions.ts'
import { identify, sendJson } from './support/http.ts'
import * as images from './support/images.ts'

const regions = await startRegions(t, [{ name: 'ptu', priority: 0 }, { name: 'west', priority: 1 }])
const { ptu } = regions.fakes as Record<'ptu' | 'west', NonNullable<typeof regions.fakes[string]>>
const photo = await images.jpeg(40, 30)
const ADMIN = 'agv_failover-admin-key'
const CALLER = 'agv_failover-caller-key'
const { app } = await buildRegionsApp(t, regions, {
  AUTH_MODE: 'apikey',
  API_KEY_HASHES: `ops:${sha256Hex(ADMIN)}:VehicleIdentification.Admin,farm:${sha256Hex(CALLER)}:VehicleIdentification.Identify`,
  VISION_BREAKER_FAILURES: '1',
  VISION_BREAKER_COOLDOWN_MS: '60000'
})
const asCaller = { 'x-api-key': CALLER }
const asAdmin = { 'x-api-key': ADMIN }
const BACKENDS = '{ vision { ready backends { name priority weight state heldUntil consecutiveFailures } } }'

t.test('Identification.backendName says which deployment answered, and history keeps it', async t => {
  const first = await identify(app, photo, { headers: asCaller })
  t.equal(first.body.errors, undefined)
  const id = first.body.data.identifyVehicle.id as string
  await app.history!.flushed()
  const stored = await sendJson(app, { query: 'query ($id: ID!) { identification(id: $id) { backendName model } }', variables: { id } }, asCaller)
  t.strictSame(stored.body.data.identification, { backendName: 'ptu', model: 'gpt-4o-2024-11-20' })

  ptu.chatFault = () => ({ kind: 'status', status: 429, retryAfterMs: '30000' })
  const second = await identify(app, photo, { headers: asCaller })
  await app.history!.flushed()
  const spilled = await sendJson(app, { query: 'query ($id: ID!) { identification(id: $id) { backendName } }', variables: { id: second.body.data.identifyVehicle.id } }, asCaller)
  t.equal(spilled.body.data.identification.backendName, 'west', 'the held region\'s request went to the next one')
})

t.test('vision { backends }: the routing state, for the Admin role only', async t => {
  const admin = await sendJson(app, { query: BACKENDS }, asAdmin)
  t.equal(admin.body.errors, undefined)
  const [ptuState, westState] = admin.body.data.vision.backends
  t.match(ptuState, { name: 'ptu', priority: 0, weight: 1, state: 'HELD', consecutiveFailures: 0 })
  t.ok(Date.parse(ptuState.heldUntil) > Date.now() + 20_000, 'held for its retry-after')
  t.strictSame(westState, { name: 'west', priority: 1, weight: 1, state: 'CLOSED', heldUntil: null, consecutiveFailures: 0 })
  t.equal(admin.body.data.vision.ready, true, 'one backend can take a request')

  const caller = await sendJson(app, { query: BACKENDS }, asCaller)
  t.equal(caller.body.errors?.[0]?.extensions?.code, 'FORBIDDEN', 'another caller is refused')
  const plain = await sendJson(app, { query: '{ vision { ready backend } }' }, asCaller)
  t.strictSame(plain.body.data.vision, { ready: true, backend: 'AZURE_OPENAI' }, 'the rest of vision stays open to callers')
})

t.test('per-backend metrics', async t => {
  const text = (await app.inject('/metrics')).payload
  t.match(text, /agrivision_vision_backend_requests_total\{backend_name="ptu",outcome="ok"\} 1/)
  t.match(text, /agrivision_vision_backend_requests_total\{backend_name="ptu",outcome="rate_limited"\} 1/)
  t.match(text, /agrivision_vision_backend_requests_total\{backend_name="west",outcome="ok"\} 1/)
  t.match(text, /agrivision_vision_backend_state\{backend_name="ptu",state="HELD"\} 1/)
  t.match(text, /agrivision_vision_backend_state\{backend_name="west",state="CLOSED"\} 1/)
  t.match(text, /agrivision_vision_backend_request_duration_seconds_count\{backend_name="west"\} 1/)
  t.match(text, /agrivision_vision_backend_consecutive_failures\{backend_name="west"\} 0/)
})

t.test('readiness: not ready when no backend can take a request; callers get UPSTREAM_UNAVAILABLE with retryAfter', async t => {
  t.equal((await app.inject('/health/ready')).statusCode, 200)
  regions.fakes.west!.chatFault = () => ({ kind: 'status', status: 500 })
  const failed = await identify(app, photo, { headers: asCaller })
  t.equal(failed.body.errors?.[0]?.extensions?.code, 'UPSTREAM_UNAVAILABLE')
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 503)
  t.match(ready.json().reason, /no Azure OpenAI deployment can take a request/)
  const again = await identify(app, photo, { headers: asCaller })
  t.equal(again.body.errors?.[0]?.extensions?.code, 'UPSTREAM_UNAVAILABLE', 'one held, one open: unavailable, not rate limited')
  const retryAfter = Number(again.body.errors?.[0]?.extensions?.retryAfter)
  t.ok(retryAfter >= 1 && retryAfter <= 30, 'the soonest: ptu\'s hold')
  const state = await sendJson(app, { query: BACKENDS }, asAdmin)
  t.match(state.body.data.vision.backends, [{ state: 'HELD' }, { state: 'OPEN', consecutiveFailures: 1 }])
  t.equal(state.body.data.vision.ready, false)
})
