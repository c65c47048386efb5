// Bulk jobs on PostgreSQL: the same cases as on SQLite (test/support/bulk-cases.ts), each test with its own database.
import t from 'tap'
import pg from 'pg'
import { tempDataDir } from './helper.ts'
import { startPostgres, createDatabase } from './support/postgres.ts'
import { bulkCases } from './support/bulk-cases.ts'
import { bulkClaimCases, claimStore } from './support/bulk-claim-cases.ts'

const server = await startPostgres(t)
let databases = 0
bulkCases(t, async () => ({ DATABASE_URL: await createDatabase(server.url, `bulk_${++databases}`) }), tempDataDir)
bulkClaimCases(t, async () => ({ dialect: 'postgres', url: await createDatabase(server.url, `bulk_${++databases}`), poolSize: 2 }))

t.test('claimJob skips a job another instance holds locked (FOR UPDATE SKIP LOCKED) and claims it once released', async t => {
  const url = await createDatabase(server.url, `bulk_${++databases}`)
  const { store, clock, addJob } = await claimStore(t, { dialect: 'postgres', url, poolSize: 2 })
  await addJob('first')
  clock.now += 10
  await addJob('second')
  const other = new pg.Client({ connectionString: url })
  await other.connect()
  t.teardown(() => other.end())
  await other.query('begin')
  await other.query('select id from bulk_jobs where id = $1 for update', ['first'])
  t.equal((await store.claimJob('owner-a', 5_000))?.id, 'second', 'the locked one skipped, not waited for')
  t.equal(await store.claimJob('owner-b', 5_000), undefined, 'the other leased, the first still locked')
  await other.query('commit')
  t.equal((await store.claimJob('owner-b', 5_000))?.id, 'first', 'released: claimed')
})
