// Idempotency-Key on identifyVehicle, in process: replay (same id, no second model call, Idempotency-Replayed),
// 409 while the first runs, 422 on another image or other arguments, per caller, key syntax, 24 h expiry,
// release after a failure, the database down (across instances on PostgreSQL: idempotency-postgres.test.ts).
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { identify, type Answer } from './support/http.ts'
import { jpeg, png } from './support/images.ts'
import { gatedVision } from './support/gated-vision.ts'
import { identifyBody, type IdentifyVariables } from './support/multipart.ts'
import { connect, postHead, write } from './support/raw-http.ts'
import { REPLAY_WAIT_MS } from '../src/history/idempotency-header.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import {
  claimKey, completeKey, fingerprintOf, IDEMPOTENCY_KEY_TTL_MS, IDEMPOTENCY_LEASE_MS, parseIdempotencyKey
} from '../src/history/idempotency.ts'
import { historyInternals } from '../src/history/plugin.ts'

async function until (check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await sleep(20)
  }
}

async function identifyWithKey (
  app: FastifyInstance, file: Buffer, key: string, variables: IdentifyVariables = {}, headers: Record<string, string> = {}
): Promise<Answer> {
  return await identify(app, file, { variables, headers: { 'idempotency-key': key, ...headers } })
}

t.test('a retry after the first finished replays it: same id, Idempotency-Replayed, no second model call', async t => {
  const gated = gatedVision()
  const app = await buildTestApp(t, { vision: gated.vision })
  const photo = await jpeg(64, 48)
  const first = await identifyWithKey(app, photo, 'order-42')
  t.equal(first.statusCode, 200)
  t.notOk(first.body.errors)
  t.notOk(first.headers['idempotency-replayed'], 'the first is not a replay')

  const again = await identifyWithKey(app, photo, 'order-42') // before the record is surely written: it waits for it
  t.equal(again.statusCode, 200)
  t.notOk(again.body.errors)
  t.equal(again.headers['idempotency-replayed'], 'true')
  t.equal(again.body.data.identifyVehicle.id, first.body.data.identifyVehicle.id, 'same id')
  t.strictSame(again.body.data.identifyVehicle.vehicles, first.body.data.identifyVehicle.vehicles, 'same answer')
  t.equal(gated.calls, 1, 'one model call')

  const quoted = await identifyWithKey(app, photo, '"order-42"')
  t.equal(quoted.body.data.identifyVehicle.id, first.body.data.identifyVehicle.id, 'the sf-string form is the same key')

  const other = await identifyWithKey(app, photo, 'order-43')
  t.not(other.body.data.identifyVehicle.id, first.body.data.identifyVehicle.id, 'another key: another identification')
  const none = await identify(app, photo)
  t.notOk(none.headers['idempotency-replayed'])
  t.equal(gated.calls, 3, 'without a key or with another, the model is asked')
})

t.test('a retry while the first is running: HTTP 409 IDEMPOTENCY_KEY_IN_USE; then the replay', async t => {
  const gated = gatedVision()
  const app = await buildTestApp(t, { vision: gated.vision })
  const photo = await jpeg(64, 48)
  const { started } = gated.hold()
  const first = identifyWithKey(app, photo, 'k1')
  await started

  const busy = await identifyWithKey(app, photo, 'k1')
  t.equal(busy.statusCode, 409)
  t.equal(busy.body.data, null)
  t.equal(busy.body.errors?.length, 1)
  t.equal(busy.body.errors?.[0]?.extensions.code, 'IDEMPOTENCY_KEY_IN_USE')
  t.type(busy.body.errors?.[0]?.extensions.retryAfter, 'number', 'says when to try again')
  t.equal(busy.headers['retry-after'], String(busy.body.errors?.[0]?.extensions.retryAfter), 'also as Retry-After')
  t.notOk(busy.headers['idempotency-replayed'])

  const otherWhileBusy = await identifyWithKey(app, await png(64, 48), 'k1')
  t.equal(otherWhileBusy.statusCode, 422, 'another image while it runs: reused, not in use')

  gated.open()
  const done = await first
  t.equal(done.statusCode, 200)
  const replay = await identifyWithKey(app, photo, 'k1')
  t.equal(replay.headers['idempotency-replayed'], 'true')
  t.equal(replay.body.data.identifyVehicle.id, done.body.data.identifyVehicle.id)
  t.equal(gated.calls, 1)
})

t.test('the same key with another image or other arguments: HTTP 422 IDEMPOTENCY_KEY_REUSED', async t => {
  const gated = gatedVision()
  const app = await buildTestApp(t, { vision: gated.vision })
  const photo = await jpeg(64, 48)
  const first = await identifyWithKey(app, photo, 'k', { instructions: 'What make?', language: 'en', detail: 'LOW' })
  t.notOk(first.body.errors)
  const cases: Array<[string, Buffer, IdentifyVariables]> = [
    ['another image', await jpeg(65, 48), { instructions: 'What make?', language: 'en', detail: 'LOW' }],
    ['other instructions', photo, { instructions: 'What model?', language: 'en', detail: 'LOW' }],
    ['no instructions (the default)', photo, { language: 'en', detail: 'LOW' }],
    ['another language', photo, { instructions: 'What make?', language: 'de', detail: 'LOW' }],
    ['another detail', photo, { instructions: 'What make?', language: 'en', detail: 'HIGH' }]
  ]
  for (const [name, file, variables] of cases) {
    const res = await identifyWithKey(app, file, 'k', variables)
    t.equal(res.statusCode, 422, name)
    t.equal(res.body.errors?.[0]?.extensions.code, 'IDEMPOTENCY_KEY_REUSED', name)
    t.equal(res.body.data, null, name)
  }
  const same = await identifyWithKey(app, photo, 'k', { instructions: '  What make?  ', language: 'en', detail: 'LOW' })
  t.equal(same.headers['idempotency-replayed'], 'true', 'the arguments as used (trimmed) decide, not their spelling')
  t.equal(gated.calls, 1)
})

t.test('keys are per caller: two API keys use the same key independently', async t => {
  const gated = gatedVision()
  const alice = newApiKey('alice')
  const bob = newApiKey('bob')
  const app = await buildTestApp(t, { vision: gated.vision, env: { AUTH_MODE: 'apikey', API_KEY_HASHES: `${alice.entry},${bob.entry}` } })
  const photo = await jpeg(64, 48)
  const a = await identifyWithKey(app, photo, 'shared', {}, { 'x-api-key': alice.key })
  const b = await identifyWithKey(app, await png(64, 48), 'shared', {}, { 'x-api-key': bob.key })
  t.equal(a.statusCode, 200)
  t.equal(b.statusCode, 200, 'another caller, another image, the same key: no 422')
  t.notOk(b.headers['idempotency-replayed'])
  t.not(a.body.data.identifyVehicle.id, b.body.data.identifyVehicle.id)
  const aAgain = await identifyWithKey(app, photo, 'shared', {}, { 'x-api-key': alice.key })
  t.equal(aAgain.body.data.identifyVehicle.id, a.body.data.identifyVehicle.id, "alice's replay is alice's")
  t.equal(gated.calls, 2)
})

t.test('an invalid key is BAD_USER_INPUT naming the header; nothing runs', async t => {
  const gated = gatedVision()
  const app = await buildTestApp(t, { vision: gated.vision })
  const photo = await jpeg(64, 48)
  const invalid: Array<[string, string]> = [
    ['256 characters', 'k'.repeat(256)],
    ['a space', 'my key'],
    ['a tab (control character)', 'my\tkey'],
    ['an empty sf-string', '""'],
    ['a bad sf-string escape', '"a\\b"'],
    ['a quote inside an sf-string', '"a"b"']
  ]
  for (const [name, key] of invalid) {
    const res = await identifyWithKey(app, photo, key)
    t.equal(res.statusCode, 400, name)
    t.equal(res.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT', name)
    t.equal(res.body.errors?.[0]?.extensions.argument, 'Idempotency-Key', name)
    t.match(res.body.errors?.[0]?.message, /Idempotency-Key/, name)
  }
  // An empty header value and non-ASCII bytes (as a latin1 header value), straight from the wire.
  const raw: Array<[string, string]> = [['empty', ''], ['non-ASCII', 'cl\u00e9']]
  for (const [name, value] of raw) {
    const res = await identify(app, photo, { headers: { 'idempotency-key': value } })
    t.equal(res.statusCode, 400, name)
    t.equal(res.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT', name)
  }
  t.equal(gated.calls, 0, 'the model was not asked')
  t.equal((await identifyWithKey(app, photo, 'k'.repeat(255))).statusCode, 200, '255 characters are fine')
  t.equal((await identifyWithKey(app, photo, '!~"\\')).statusCode, 200, 'any visible ASCII')

  t.equal(parseIdempotencyKey(undefined), null)
  t.equal(parseIdempotencyKey('"a\\"b\\\\c"'), 'a"b\\c', 'sf-string escapes')
  t.throws(() => parseIdempotencyKey(''), { code: 'BAD_USER_INPUT' })
  t.throws(() => parseIdempotencyKey('\u00e9'), { code: 'BAD_USER_INPUT' })
  t.throws(() => parseIdempotencyKey('a\u0001b'), { code: 'BAD_USER_INPUT' })
  t.throws(() => parseIdempotencyKey('a\u007fb'), { code: 'BAD_USER_INPUT' })
})

t.test('keys expire after 24 h; a stale lease is taken over (claims with a given clock)', async t => {
  const app = await buildTestApp(t)
  const db = historyInternals(app.history!).store.db
  const ref = { callerId: 'c', key: 'k' }
  const fp = fingerprintOf({ image: Buffer.from('image'), instructions: 'i', language: 'en', detail: 'auto' })
  const other = fingerprintOf({ image: Buffer.from('image2'), instructions: 'i', language: 'en', detail: 'auto' })
  t.not(fingerprintOf({ image: Buffer.from('ab'), instructions: 'c', language: 'en', detail: 'auto' }),
    fingerprintOf({ image: Buffer.from('a'), instructions: 'bc', language: 'en', detail: 'auto' }), 'length-prefixed')
  const t0 = Date.UTC(2030, 0, 1)

  const first = await claimKey(db, ref, fp, t0)
  t.same(first, { kind: 'proceed', lease: t0 })
  await t.rejects(claimKey(db, ref, fp, t0 + 1000), { code: 'IDEMPOTENCY_KEY_IN_USE' })
  await completeKey(db, ref, t0, 'id-1')
  t.same(await claimKey(db, ref, fp, t0 + IDEMPOTENCY_KEY_TTL_MS - 1), { kind: 'replay', identificationId: 'id-1', lease: t0 }, 'within 24 h: replay')
  await t.rejects(claimKey(db, ref, other, t0 + IDEMPOTENCY_KEY_TTL_MS - 1), { code: 'IDEMPOTENCY_KEY_REUSED' })
  t.same(await claimKey(db, ref, other, t0 + IDEMPOTENCY_KEY_TTL_MS), { kind: 'proceed', lease: t0 + IDEMPOTENCY_KEY_TTL_MS },
    'after 24 h the key is new, whatever it is sent with')

  const t1 = t0 + 2 * IDEMPOTENCY_KEY_TTL_MS
  t.same(await claimKey(db, { callerId: 'c', key: 'stale' }, fp, t1), { kind: 'proceed', lease: t1 })
  await t.rejects(claimKey(db, { callerId: 'c', key: 'stale' }, fp, t1 + IDEMPOTENCY_LEASE_MS - 1), { code: 'IDEMPOTENCY_KEY_IN_USE' })
  t.same(await claimKey(db, { callerId: 'c', key: 'stale' }, fp, t1 + IDEMPOTENCY_LEASE_MS), { kind: 'proceed', lease: t1 + IDEMPOTENCY_LEASE_MS },
    'running for 10 minutes: its instance died, the key is taken over')
  await completeKey(db, { callerId: 'c', key: 'stale' }, t1, 'late') // the old lease's completion changes nothing
  await t.rejects(claimKey(db, { callerId: 'c', key: 'stale' }, fp, t1 + IDEMPOTENCY_LEASE_MS + 1), { code: 'IDEMPOTENCY_KEY_IN_USE' })

  // Through the API: an expired row (its expires_at in the past) does not replay.
  const photo = await jpeg(64, 48)
  const before = await identifyWithKey(app, photo, 'daily')
  await db.updateTable('idempotency_keys').set({ expires_at: Date.now() - 1 }).where('key', '=', 'daily').execute()
  const after = await identifyWithKey(app, await png(64, 48), 'daily')
  t.equal(after.statusCode, 200, 'an expired key is free for another request')
  t.notOk(after.headers['idempotency-replayed'])
  t.not(after.body.data.identifyVehicle.id, before.body.data.identifyVehicle.id)
})

t.test('a failed identification releases its key: the retry runs again', async t => {
  const gated = gatedVision()
  const app = await buildTestApp(t, { vision: gated.vision })
  const photo = await jpeg(64, 48)
  gated.failOnce()
  const failed = await identifyWithKey(app, photo, 'retry-me')
  t.equal(failed.body.errors?.[0]?.extensions.code, 'UPSTREAM_UNAVAILABLE')
  const retried = await identifyWithKey(app, photo, 'retry-me')
  t.equal(retried.statusCode, 200)
  t.notOk(retried.body.errors)
  t.notOk(retried.headers['idempotency-replayed'], 'not a replay of the failure')
  t.equal(gated.calls, 2)
  const replay = await identifyWithKey(app, photo, 'retry-me')
  t.equal(replay.body.data.identifyVehicle.id, retried.body.data.identifyVehicle.id)
  t.equal(gated.calls, 2)
})

t.test('a replay whose identification was deleted runs afresh', async t => {
  const gated = gatedVision()
  const app = await buildTestApp(t, { vision: gated.vision })
  const photo = await jpeg(64, 48)
  const first = await identifyWithKey(app, photo, 'gone')
  await app.history!.flushed()
  t.ok(await historyInternals(app.history!).store.delete(first.body.data.identifyVehicle.id, null))
  const again = await identifyWithKey(app, photo, 'gone')
  t.equal(again.statusCode, 200)
  t.notOk(again.headers['idempotency-replayed'])
  t.not(again.body.data.identifyVehicle.id, first.body.data.identifyVehicle.id, 'a new identification')
  t.equal(gated.calls, 2)
  const replay = await identifyWithKey(app, photo, 'gone')
  t.equal(replay.body.data.identifyVehicle.id, again.body.data.identifyVehicle.id, 'and the key replays the new one')
})

t.test('the database down: identifications with a key still answer (without idempotency)', async t => {
  t.test('a broken store (its table gone)', async t => {
    const gated = gatedVision()
    const app = await buildTestApp(t, { vision: gated.vision })
    await sql`drop table idempotency_keys`.execute(historyInternals(app.history!).store.db)
    const photo = await jpeg(64, 48)
    const a = await identifyWithKey(app, photo, 'k')
    const b = await identifyWithKey(app, photo, 'k')
    t.equal(a.statusCode, 200)
    t.equal(b.statusCode, 200)
    t.notOk(b.headers['idempotency-replayed'])
    t.equal(gated.calls, 2, 'no idempotency without its table')
  })
  t.test('PostgreSQL unreachable from the start', async t => {
    const app = await buildTestApp(t, { env: { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' } })
    const res = await identifyWithKey(app, await jpeg(64, 48), 'k')
    t.equal(res.statusCode, 200)
    t.notOk(res.body.errors)
  })
  t.test('HISTORY=off', async t => {
    const app = await buildTestApp(t, { env: { HISTORY: 'off' } })
    const res = await identifyWithKey(app, await jpeg(64, 48), 'k')
    t.equal(res.statusCode, 200)
    t.notOk(res.body.errors)
    const bad = await identifyWithKey(app, await jpeg(64, 48), 'bad key')
    t.equal(bad.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT', 'still checked')
  })
})

t.test('CORS: the client may send Idempotency-Key and read Idempotency-Replayed', async t => {
  const app = await buildTestApp(t, { env: { CORS_ORIGINS: 'https://app.example' } })
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/graphql',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'idempotency-key' }
  })
  t.match(preflight.headers['access-control-allow-headers'], /idempotency-key/)
  const res = await identify(app, await jpeg(64, 48), { headers: { origin: 'https://app.example' } })
  t.match(res.headers['access-control-expose-headers'], /idempotency-replayed/)
})

t.test('a replay whose record still waits in the buffer (every write refused) is 409 with Retry-After, never a second run', async t => {
  const gated = gatedVision()
  const app = await buildTestApp(t, { vision: gated.vision })
  const { recorder, store } = historyInternals(app.history!)
  // Every record refused with an error the code does not know (SQLITE_ERROR from json()): they wait in the buffer.
  await sql.raw('create trigger refuse_all before insert on identifications begin select json(\'not json\'); end').execute(store.db)
  const photo = await jpeg(64, 48)
  const first = await identifyWithKey(app, photo, 'held')
  t.equal(first.statusCode, 200)
  for (const moment of ['while the writer tries', 'once it holds the records']) {
    if (moment !== 'while the writer tries') await until(() => recorder.failing)
    const began = Date.now()
    const again = await identifyWithKey(app, photo, 'held')
    t.equal(again.statusCode, 409, moment)
    t.equal(again.body.errors?.[0]?.extensions.code, 'IDEMPOTENCY_KEY_IN_USE')
    t.match(again.body.errors?.[0]?.message, /still being saved/)
    t.ok(Number(again.headers['retry-after']) > 0, 'Retry-After')
    t.ok(Date.now() - began < REPLAY_WAIT_MS + 2_000, `answered in ${Date.now() - began} ms`)
  }
  t.equal(gated.calls, 1, 'the model was not asked again')
  await sql.raw('drop trigger refuse_all').execute(store.db)
  await until(() => recorder.pending === 0 && !recorder.failing, 60_000)
  const replay = await identifyWithKey(app, photo, 'held')
  t.equal(replay.headers['idempotency-replayed'], 'true')
  t.equal(replay.body.data.identifyVehicle.id, first.body.data.identifyVehicle.id, 'the first identification')
  t.equal(gated.calls, 1)
})

t.test('retries while the first fails, or while its caller is gone: each answered at once, never hung', async t => {
  t.test('the first request failing', async t => {
    const gated = gatedVision()
    const app = await buildTestApp(t, { vision: gated.vision })
    const photo = await jpeg(64, 48)
    const { started } = gated.hold()
    const first = identifyWithKey(app, photo, 'fails')
    await started
    const began = Date.now()
    const busy = await Promise.all(Array.from({ length: 8 }, async () => await identifyWithKey(app, photo, 'fails')))
    t.strictSame(busy.map(res => res.statusCode), Array(8).fill(409), 'every retry: 409 while the first runs')
    t.ok(Date.now() - began < 2_000, `at once (${Date.now() - began} ms)`)
    gated.failOnce()
    gated.open()
    t.equal((await first).body.errors?.[0]?.extensions.code, 'UPSTREAM_UNAVAILABLE')
    const retried = await identifyWithKey(app, photo, 'fails')
    t.equal(retried.statusCode, 200, 'the key was released: the retry runs')
    t.notOk(retried.headers['idempotency-replayed'])
    t.equal(gated.calls, 2)
  })

  t.test('the first request\'s caller disconnecting', async t => {
    const gated = gatedVision()
    const app = await buildTestApp(t, { vision: gated.vision })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const photo = await jpeg(64, 48)
    const { started } = gated.hold()
    const { payload, headers } = await identifyBody(photo)
    const socket = await connect((app.server.address() as AddressInfo).port)
    await write(socket, postHead('/graphql', { ...headers, 'idempotency-key': 'caller-gone' }, payload.length))
    await write(socket, payload)
    await started
    socket.destroy()
    const began = Date.now()
    const busy = await identifyWithKey(app, photo, 'caller-gone')
    t.equal(busy.statusCode, 409, 'while the first still runs')
    t.ok(Date.now() - began < 2_000, `at once (${Date.now() - began} ms)`)
    gated.open()
    // The first ends (answered to nobody, or given up): the key then replays it or runs again; retries never hang.
    let settled: Answer | undefined
    for (let i = 0; i < 50 && settled === undefined; i++) {
      const res = await identifyWithKey(app, photo, 'caller-gone')
      if (res.statusCode === 200) settled = res
      else { t.equal(res.statusCode, 409); await sleep(100) }
    }
    t.ok(settled, 'a retry succeeds once the first has ended')
    t.equal(gated.calls, settled?.headers['idempotency-replayed'] === 'true' ? 1 : 2, 'one model call per identification')
  })
})
