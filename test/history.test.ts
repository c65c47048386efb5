// History on the default embedded SQLite (the same cases run on PostgreSQL in test/history-postgres.test.ts),
// and what does not depend on the database: HISTORY=off.
import { join } from 'node:path'
import t from 'tap'
import { buildTestApp, tempDataDir } from './helper.ts'
import { identify, sendJson } from './support/http.ts'
import { jpeg } from './support/images.ts'
import { historyCases } from './support/history-cases.ts'
import { holdWrite } from './support/sqlite-other-writer.ts'

const LIST = '{ identifications { edges { node { id } } } }'

historyCases(t, async () => ({ DATA_DIR: tempDataDir() }))

t.test('HISTORY=off: nothing recorded; history queries say so', async t => {
  const app = await buildTestApp(t, { env: { HISTORY: 'off' } })
  t.equal(app.history, null)
  t.notOk((await identify(app, await jpeg(64, 48))).body.errors, 'identifications go on')
  const res = await sendJson(app, { query: LIST })
  t.equal(res.body.errors?.[0]?.extensions.code, 'STORAGE_UNAVAILABLE')
  t.match(res.body.errors?.[0]?.message, /HISTORY=off/)
})

t.test('anonymous callers share one identity: in production (ALLOW_ANONYMOUS=true) history is refused to them', async t => {
  const app = await buildTestApp(t, { env: { NODE_ENV: 'production', ALLOW_ANONYMOUS: 'true' } })
  t.notOk((await identify(app, await jpeg(64, 48))).body.errors, 'they may identify')
  for (const query of [LIST, '{ identification(id: "x") { id } }', 'mutation { deleteIdentification(id: "x") }',
    '{ usage(from: "2026-11-01T00:00:00Z", to: "2026-11-02T00:00:00Z") { key } }']) {
    const res = await sendJson(app, { query })
    t.equal(res.body.errors?.[0]?.extensions?.code, 'FORBIDDEN', query)
  }
})

t.test('SQLite: a record withdrawn while another connection writes waits for it and is withdrawn (no "database is locked")', async t => {
  // The delete runs on the request thread's connection while the writer thread writes records on its own; its
  // transaction writes first, so it waits for the other writer (held on another thread) instead of failing at once.
  const dir = tempDataDir()
  const app = await buildTestApp(t, { env: { DATA_DIR: dir } })
  const ids: string[] = []
  for (let i = 0; i < 3; i++) ids.push((await identify(app, await jpeg(64, 48))).body.data.identifyVehicle.id)
  await app.history!.flushed()
  for (const [round, id] of ids.entries()) {
    const other = await holdWrite(join(dir, 'history.db'), 'update identifications set language = language where id = ?', [id], 150)
    const deleted = await app.history!.delete(id, null).finally(async () => { await other.committed })
    t.equal(deleted, true, `round ${round}: withdrawn after the other writer's commit`)
    t.equal(await app.history!.get(id, null), undefined, `round ${round}: gone`)
  }
})
