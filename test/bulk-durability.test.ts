// A bulk job survives kill -9 (SQLite): the real server process is killed while it prepares the photos, then again
// while it answers them (ONLINE, against a loopback fake of Azure OpenAI answering slowly), and started again on the
// same DATA_DIR each time. The job completes; every photo has exactly one identification; no file is left behind.
// The GLOBAL_BATCH kills: bulk-durability-batch.test.ts; both on PostgreSQL: bulk-durability-postgres.test.ts.
import t from 'tap'
import { durabilityFake, onlineKillCase, sqliteStorage } from './support/durability-cases.ts'

const fake = await durabilityFake(t)
const context = { fake, storage: async () => sqliteStorage() }

t.test('kill -9 while preparing, then while answering: the job completes, one identification per photo, no file left', { timeout: 240_000 }, async t => {
  await onlineKillCase(t, context)
})
