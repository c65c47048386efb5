// Bulk jobs survive kill -9 on PostgreSQL: the same cases as bulk-durability.test.ts (ONLINE) and
// bulk-durability-batch.test.ts (GLOBAL_BATCH), two server processes in turn on one DATABASE_URL and DATA_DIR,
// the exactly-once checks made with SQL on PostgreSQL itself.
import t from 'tap'
import { createDatabase, startPostgres } from './support/postgres.ts'
import { batchCreateKillCase, batchReadKillCase, durabilityFake, onlineKillCase, postgresStorage } from './support/durability-cases.ts'

t.setTimeout(300_000)
const server = await startPostgres(t)
const fake = await durabilityFake(t)
let databases = 0
const context = { fake, storage: async () => postgresStorage(await createDatabase(server.url, `bulk_durability_${++databases}`)) }

t.test('ONLINE: kill -9 while preparing, then while answering: completed, one identification per photo', async t => {
  await onlineKillCase(t, context)
})

t.test('GLOBAL_BATCH: kill -9 after the batch create reached Azure, before its id was stored: adopted, not made again', async t => {
  await batchCreateKillCase(t, context)
})

t.test('GLOBAL_BATCH: kill -9 while reading the results: read again, each photo answered once', async t => {
  await batchReadKillCase(t, context)
})
