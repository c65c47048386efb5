// GLOBAL_BATCH bulk jobs survive kill -9 (SQLite): the real server process is killed right after Azure made the
// chunk's batch (its reply never came back: the adoption path), or halfway through reading the batch's results,
// and started again on the same DATA_DIR. One batch per chunk, each custom_id submitted once, one identification
// per photo, the job COMPLETED, nothing left locally or at Azure. The same on PostgreSQL: -postgres.test.ts.
import t from 'tap'
import { batchCreateKillCase, batchReadKillCase, durabilityFake, sqliteStorage, uploadKillCase } from './support/durability-cases.ts'

t.setTimeout(300_000)
const fake = await durabilityFake(t)
const context = { fake, storage: async () => sqliteStorage() }

t.test('kill -9 after the batch create reached Azure, before its id was stored: the batch is adopted, not made again', async t => {
  await batchCreateKillCase(t, context)
})

t.test('kill -9 while reading the results (a page recorded, the rest not): read again, each photo answered once', async t => {
  await batchReadKillCase(t, context)
})

t.test('kill -9 after the upload reached Azure, before its file id was stored: the file is adopted, not uploaded again', async t => {
  await uploadKillCase(t, context)
})
