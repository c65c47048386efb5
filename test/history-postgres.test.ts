// History on PostgreSQL: the same cases as on SQLite (test/support/history-cases.ts), each test with its
// own database in one throwaway cluster; and migrations started together by several instances.
import t from 'tap'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { startPostgres, createDatabase } from './support/postgres.ts'
import { historyCases } from './support/history-cases.ts'
import { usageCases } from './support/usage-cases.ts'
import { openDatabase } from '../src/database/open.ts'
import { migrateToLatest, migrationProvider } from '../src/migrations.ts'

const server = await startPostgres(t)
let databases = 0
const freshDatabase = async (): Promise<string> => await createDatabase(server.url, `history_${++databases}`)

historyCases(t, async () => ({ DATABASE_URL: await freshDatabase() }))
usageCases(t, async () => ({ DATABASE_URL: await freshDatabase() }))

t.test('instances migrating at once take turns under the advisory lock: each migration applied once', async t => {
  const url = await freshDatabase()
  const instances = Array.from({ length: 4 }, () => openDatabase({ dialect: 'postgres', url, poolSize: 2 }))
  t.teardown(async () => { for (const instance of instances) await instance.close() })
  const applied = await Promise.all(instances.map(async instance => await migrateToLatest(instance.db)))
  const all = Object.keys(await migrationProvider.getMigrations()).sort()
  t.ok(all.length >= 2, `migrations: ${all.join(', ')}`)
  t.strictSame(applied.flat().sort(), all, 'each applied by one instance; the others found it done')
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) })
  t.teardown(() => db.destroy())
  const rows = await db.selectFrom('kysely_migration').select('name').execute()
  t.strictSame(rows.map(row => row.name).sort(), all)
})

t.test('bigint times and sums come back as numbers', async t => {
  const url = await freshDatabase()
  const { db, close } = openDatabase({ dialect: 'postgres', url, poolSize: 1 })
  t.teardown(close)
  await migrateToLatest(db)
  const { sum } = await db.selectFrom('usage_daily').select(eb => eb.fn.coalesce(eb.fn.sum('prompt_tokens'), eb.lit(0)).as('sum')).executeTakeFirstOrThrow()
  t.equal(typeof sum, 'number')
})
