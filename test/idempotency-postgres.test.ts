// Idempotency-Key across two instances sharing one PostgreSQL database (a real, throwaway server:
// test/support/postgres.ts): a key claimed on A is 409 on B while it runs, and B replays A's identification after.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { identify, type Answer } from './support/http.ts'
import { jpeg, png } from './support/images.ts'
import { gatedVision } from './support/gated-vision.ts'
import { createDatabase, startPostgres } from './support/postgres.ts'

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
