// Untrusted text into storage, and a write queue that sets a bad record aside, on SQLite (the same cases run on
// PostgreSQL in test/storable-text-postgres.test.ts).
import t from 'tap'
import { sql } from 'kysely'
import { tempDataDir } from './helper.ts'
import { FakeAzure } from './support/fake-azure.ts'
import { storableCases } from './support/storable-cases.ts'
import { historyInternals } from '../src/history/plugin.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())

storableCases(t, async () => ({ DATA_DIR: tempDataDir() }), fake, {
  // The table taken away: every write fails with SQLITE_ERROR ("no such table"), as with a database that is not there.
  outage: async app => {
    const db = historyInternals(app.history!).store.db
    await sql.raw('alter table identifications rename to identifications_away').execute(db)
    return { end: async () => { await sql.raw('alter table identifications_away rename to identifications').execute(db) } }
  }
})
