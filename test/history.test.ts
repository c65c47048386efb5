// History on the default embedded SQLite (the same cases run on PostgreSQL in test/history-postgres.test.ts),
// and what does not depend on the database: HISTORY=off.
import t from 'tap'
import { buildTestApp, tempDataDir } from './helper.ts'
import { identify, sendJson } from './support/http.ts'
import { jpeg } from './support/images.ts'
import { historyCases } from './support/history-cases.ts'

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
