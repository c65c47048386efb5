// Bulk jobs on PostgreSQL: the same cases as on SQLite (test/support/bulk-cases.ts), each test with its own database.
import t from 'tap'
import { tempDataDir } from './helper.ts'
import { startPostgres, createDatabase } from './support/postgres.ts'
import { bulkCases } from './support/bulk-cases.ts'

const server = await startPostgres(t)
let databases = 0
bulkCases(t, async () => ({ DATABASE_URL: await createDatabase(server.url, `bulk_${++databases}`) }), tempDataDir)
