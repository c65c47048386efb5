// ADAPTIVE detail in GLOBAL_BATCH jobs on PostgreSQL: the same cases as on SQLite, each app on its own database.
import t from 'tap'
import { startPostgres, createDatabase } from './support/postgres.ts'
import { adaptiveBatchCases } from './support/adaptive-batch-cases.ts'

const server = await startPostgres(t)
let databases = 0
await adaptiveBatchCases(t, async () => ({ DATABASE_URL: await createDatabase(server.url, `adaptive_batch_${++databases}`) }))
