// Idempotency-Key across two instances sharing one PostgreSQL database (a real, throwaway server:
// test/support/postgres.ts): a key claimed on A is 409 on B while it runs, and B replays A's identification after;
// a replay whose record is slow to be written is answered within a bound, by a bounded number of waiters.
import t, { type Test } from 'tap'
import { Client } from 'pg'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { identify, type Answer } from './support/http.ts'
import { jpeg, png } from './support/images.ts'
import { gatedVision } from './support/gated-vision.ts'
import { createDatabase, startPostgres } from './support/postgres.ts'
import { REPLAY_WAIT_MS, REPLAY_WAITERS_PER_CALLER, REPLAY_WAITERS_PER_KEY } from '../src/history/idempotency-header.ts'

async function identifyWithKey (app: FastifyInstance, file: Buffer, key: string): Promise<Answer> {
  return await identify(app, file, { headers: { 'idempotency-key': key } })
}

t.test('across instances sharing PostgreSQL: 409 on B while A runs, then B replays A\'s identification', async t => {
  const pg = await startPostgres(t)
  const url = await createDatabase(pg.url, 'idempotency')
  const a = gatedVision()
  const b = gatedVision()
  const appA = await buildTestApp(t, { vision: a.vision, env: { DATABASE_URL: url } })
  const appB = await buildTestApp(t, { vision: b.vision, env: { DATABASE_URL: url } })
  t.equal(appA.database!.dialect, 'postgres')
  const photo = await jpeg(64, 48)

  const { started } = a.hold()
  const first = identifyWithKey(appA, photo, 'shared-db')
  await started
  const busy = await identifyWithKey(appB, photo, 'shared-db')
  t.equal(busy.statusCode, 409, 'B sees A running')
  t.equal(busy.body.errors?.[0]?.extensions.code, 'IDEMPOTENCY_KEY_IN_USE')
  const reused = await identifyWithKey(appB, await png(64, 48), 'shared-db')
  t.equal(reused.statusCode, 422, 'B refuses another image under the key')

  a.open()
  const done = await first
  t.equal(done.statusCode, 200)
  const replay = await identifyWithKey(appB, photo, 'shared-db') // A's record may still be on its way: B waits for it
  t.equal(replay.statusCode, 200)
  t.equal(replay.headers['idempotency-replayed'], 'true')
  t.equal(replay.body.data.identifyVehicle.id, done.body.data.identifyVehicle.id, 'the same identification')
  t.equal(a.calls + b.calls, 1, 'one model call in all')

  // Two instances racing for a fresh key: one claims it and waits at its gate; the other answers first, with 409.
  a.hold()
  b.hold()
  const racing = [identifyWithKey(appA, photo, 'race'), identifyWithKey(appB, photo, 'race')]
  const loser = await Promise.race(racing)
  t.equal(loser.statusCode, 409, 'the one that lost the claim is refused')
  a.open()
  b.open()
  const answers = await Promise.all(racing)
  t.same(answers.map(res => res.statusCode).sort(), [200, 409], 'the other ran')
  t.equal(a.calls + b.calls, 2, 'one more model call')
})

t.test('a replay while the first\'s record is still being written waits REPLAY_WAIT_MS at most: 409 with Retry-After; ' +
  'waiters bounded per key and per caller; no second model call', async t => {
  const server = await startPostgres(t)
  const url = await createDatabase(server.url, 'replay_wait')
  const gated = gatedVision()
  const app = await buildTestApp(t, { vision: gated.vision, env: { DATABASE_URL: url } })
  const photo = await jpeg(64, 48)
  // Another session holds a lock that lets reads and key claims through but makes every record insert wait.
  const locker = new Client({ connectionString: url })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('begin')
  await locker.query('lock table identifications in share mode')

  const first = await identifyWithKey(app, photo, 'slow-record')
  t.equal(first.statusCode, 200, 'the first is answered; its record waits')
  const refusedAtOnce = (res: Answer): boolean => /Too many requests/.test(res.body.errors?.[0]?.message ?? '')
  const timed = async (key: string): Promise<{ res: Answer, ms: number }> => {
    const began = Date.now()
    const res = await identifyWithKey(app, photo, key)
    return { res, ms: Date.now() - began }
  }
  const inUse = (t: Test, { res, ms }: { res: Answer, ms: number }, what: string): void => {
    t.equal(res.statusCode, 409, `${what}: 409`)
    t.equal(res.body.errors?.[0]?.extensions.code, 'IDEMPOTENCY_KEY_IN_USE', what)
    t.ok(Number(res.headers['retry-after']) > 0, `${what}: Retry-After`)
    t.ok(ms < REPLAY_WAIT_MS + 2_500, `${what}: answered in ${ms} ms`)
  }

  // Many waiters on one key.
  const sameKey = await Promise.all(Array.from({ length: 10 }, async () => await timed('slow-record')))
  for (const [i, answer] of sameKey.entries()) inUse(t, answer, `retry ${i} of one key`)
  t.equal(sameKey.filter(({ res }) => refusedAtOnce(res)).length, 10 - REPLAY_WAITERS_PER_KEY, 'beyond the per-key bound: refused without waiting')
  t.ok(sameKey.filter(({ res }) => !refusedAtOnce(res)).every(({ ms }) => ms >= REPLAY_WAIT_MS - 200), 'the others waited for the record')

  // Waiters on many keys of one caller.
  const keys = Array.from({ length: 20 }, (_, i) => `many-${i}`)
  for (const key of keys) t.equal((await identifyWithKey(app, photo, key)).statusCode, 200)
  const manyKeys = await Promise.all(keys.map(async key => await timed(key)))
  for (const [i, answer] of manyKeys.entries()) inUse(t, answer, `retry of key ${i}`)
  t.equal(manyKeys.filter(({ res }) => refusedAtOnce(res)).length, keys.length - REPLAY_WAITERS_PER_CALLER, 'beyond the per-caller bound: refused without waiting')
  t.equal(gated.calls, 1 + keys.length, 'no retry ran the model again')

  // The lock gone, the records are written: the retries replay.
  await locker.query('rollback')
  await app.history!.flushed()
  for (const [key, id] of [['slow-record', first.body.data.identifyVehicle.id]] as const) {
    const replay = await identifyWithKey(app, photo, key)
    t.equal(replay.statusCode, 200)
    t.equal(replay.headers['idempotency-replayed'], 'true')
    t.equal(replay.body.data.identifyVehicle.id, id, 'the first identification')
  }
  t.equal((await identifyWithKey(app, photo, 'many-7')).headers['idempotency-replayed'], 'true')
  t.equal(gated.calls, 1 + keys.length)
})
