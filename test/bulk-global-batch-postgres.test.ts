// GLOBAL_BATCH bulk jobs end to end on PostgreSQL: the same cases as on SQLite, each app on its own database.
import t from 'tap'
import { startPostgres, createDatabase } from './support/postgres.ts'
import { globalBatchCases } from './support/global-batch-cases.ts'

const server = await startPostgres(t)
let databases = 0
await globalBatchCases(t, async () => ({ DATABASE_URL: await createDatabase(server.url, `global_batch_${++databases}`) }))
