// The dashboard's whole path end to end on PostgreSQL (DATABASE_URL; a real, throwaway server:
// test/support/postgres.ts), through the real server process, with a database outage and recovery:
// test/support/dashboard-scenario.ts. SQLite: test/dashboard-sqlite.e2e.test.ts.
import t from 'tap'
import { dashboardScenario } from './support/dashboard-scenario.ts'
import { createDatabase, startPostgres } from './support/postgres.ts'

t.test('dashboard end to end on PostgreSQL, with an outage', { timeout: 100_000 }, async t => {
  const pg = await startPostgres(t)
  const url = await createDatabase(pg.url, 'dashboard')
  await dashboardScenario(t, { env: { DATABASE_URL: url }, outage: { pause: pg.pause, resume: pg.resume } })
})
