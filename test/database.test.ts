// The database plugin and history's record hook: the migration registry's rules, app.database with HISTORY on and
// off, and a RecordHook's rows in the records' transaction on every path (a hook that fails takes the records with it).
import t from 'tap'
import type { Kysely } from 'kysely'
import { MigrationRegistry } from '../src/database/migrations.ts'
import { openDatabase } from '../src/database/open.ts'
import { migrateToLatest } from '../src/migrations.ts'
import { HistoryStore } from '../src/history/store.ts'
import { startSqliteWriter } from '../src/history/sqlite-writer.ts'
import type { RecordHook, WrittenRecord } from '../src/history/public.ts'
import type { HistoryTables } from '../src/history/tables.ts'
import { buildTestApp, tempDataDir } from './helper.ts'
import { record } from './support/history-records.ts'
import { createDatabase, startPostgres } from './support/postgres.ts'

const REFUSING = new URL('./support/refusing-record-hook.ts', import.meta.url)

t.test('the migration registry: one name once, nothing after the migration', async t => {
  const registry = new MigrationRegistry()
  const noop = { up: async () => {} }
  registry.register('a', { '0001-a': noop })
  t.throws(() => { registry.register('b', { '0001-a': noop }) }, /0001-a given twice \(a, b\)/)
  registry.register('b', { '0002-b': noop })
  t.strictSame(Object.keys(await registry.provider.getMigrations()).sort(), ['0001-a', '0002-b'])
  registry.close()
  t.throws(() => { registry.register('c', { '0003-c': noop }) }, /after the database was migrated/)
})

t.test('app.database: the schema up to date once ready; none with HISTORY=off; no hook after start-up', async t => {
  const app = await buildTestApp(t)
  t.equal(app.database!.dialect, 'sqlite')
  t.equal(app.database!.ready(), true)
  const names = await app.database!.db.withTables<{ kysely_migration: { name: string } }>()
    .selectFrom('kysely_migration').select('name').orderBy('name').execute()
  t.strictSame(names.map(row => row.name), ['0001-history', '0002-webhooks', '0003-backend-name', '0004-thumbnails-created',
    '0005-bulk-jobs', '0006-identifications-bulk-job', '0007-identifications-batch', '0008-bulk-adaptive'],
  'the stored names, byte for byte')
  t.throws(() => { app.database!.registerMigrations('late', { '9999-late': { up: async () => {} } }) }, /after the database was migrated/)
  const hook: RecordHook = { name: 'late', kysely: async () => {}, sqliteModule: REFUSING }
  t.throws(() => { app.history!.onRecordTransaction(hook) }, /added after start-up/)

  const off = await buildTestApp(t, { env: { HISTORY: 'off' } })
  t.equal(off.database, null)
  t.equal(off.history, null)
})

async function rows (db: Kysely<HistoryTables>): Promise<string[]> {
  return (await db.selectFrom('identifications').select('id').execute()).map(row => row.id)
}

t.test('SQLite writer thread: the hook module runs in the batch\'s transaction; when it fails, no record is written', async t => {
  const opened = openDatabase<HistoryTables>({ dialect: 'sqlite', file: `${tempDataDir()}/history.db` })
  t.teardown(() => opened.close())
  await migrateToLatest(opened.db)
  const writer = startSqliteWriter(opened.sqlite!.raw, opened.sqlite!.file, () => {}, () => [REFUSING.href])
  t.teardown(() => writer.close())
  await t.rejects(writer.insertMany([record({}), record({})]), /refused by the hook/)
  t.strictSame(await rows(opened.db), [], 'rolled back with the hook')
})

for (const dialect of ['sqlite', 'postgres'] as const) {
  t.test(`${dialect}, Kysely path: the hook sees the records written, in their transaction`, async t => {
    const target = dialect === 'sqlite'
      ? { dialect, file: `${tempDataDir()}/history.db` }
      : { dialect, url: await createDatabase((await startPostgres(t)).url, 'hooks'), poolSize: 2 }
    const opened = openDatabase<HistoryTables>(target)
    t.teardown(() => opened.close())
    await migrateToLatest(opened.db)
    const seen: WrittenRecord[][] = []
    let refuse = false
    const hook: RecordHook = {
      name: 'test',
      kysely: async (trx, written) => {
        seen.push([...written])
        // Inside the transaction: the records are there to read.
        const inside = await trx.selectFrom('identifications').select('id').where('id', 'in', written.map(w => w.id)).execute()
        if (inside.length !== written.length) throw new Error('the hook ran outside the records\' transaction')
        if (refuse) throw new Error('refused by the hook')
      },
      sqliteModule: REFUSING
    }
    const store = new HistoryStore(opened.db, [hook])
    const ok = record({})
    const failed = record({ outcome: 'UPSTREAM_UNAVAILABLE', answer: null, vehicles: [] })
    await store.insertMany([ok, failed])
    t.strictSame(seen, [[
      { id: ok.id, ok: true, outcome: 'OK', createdAt: ok.createdAt.getTime(), bulkJobId: null, promptTokens: 100, completionTokens: 10 },
      {
        id: failed.id,
        ok: false,
        outcome: 'UPSTREAM_UNAVAILABLE',
        createdAt: failed.createdAt.getTime(),
        bulkJobId: null,
        promptTokens: 100,
        completionTokens: 10
      }
    ]])
    await store.insertMany([ok])
    t.equal(seen.length, 1, 'a record already written is not handed to the hook again')

    refuse = true
    const refused = record({})
    await t.rejects(store.insertMany([refused]), /refused by the hook/)
    t.notOk((await rows(opened.db)).includes(refused.id), 'rolled back with the hook')
  })
}
