// The dashboard's whole path end to end on the default embedded SQLite (DATA_DIR), through the real server
// process: test/support/dashboard-scenario.ts. PostgreSQL: test/dashboard-postgres.e2e.test.ts.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { dashboardScenario } from './support/dashboard-scenario.ts'

t.test('dashboard end to end on SQLite', { timeout: 100_000 }, async t => {
  // One DATA_DIR for both server processes, so the restart finds the same history.db.
  const dataDir = mkdtempSync(join(tmpdir(), 'agrivision-dashboard-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  // No outage step: SQLite is a file opened by the process itself, not a server that can go away under it. Making
  // DATA_DIR read-only does not simulate one either: the open database keeps working (and root ignores the mode);
  // a failing write is covered in-process by test/history-recorder.test.ts and the app tests.
  await dashboardScenario(t, { env: { DATA_DIR: dataDir } })
})
