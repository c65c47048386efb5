// `npm run db:migrate`: brings the history database (DATABASE_URL, else DATA_DIR's SQLite file) up to
// date and exits, for deployments that migrate before rolling out. The service also migrates at
// start-up, under the same lock (PostgreSQL advisory lock), so running both is safe.
import { loadConfig, ConfigError } from '../config.ts'
import { openDatabase } from '../database/open.ts'
import { migrateToLatest } from '../migrations.ts'

try {
  const { database } = loadConfig()
  if (database === null) {
    process.stdout.write('HISTORY=off: nothing is kept, so there is no database to migrate\n')
    process.exit(0)
  }
  const where = database.dialect === 'sqlite' ? database.file : 'DATABASE_URL (PostgreSQL)'
  const { db, close } = openDatabase(database)
  try {
    const applied = await migrateToLatest(db)
    process.stdout.write(applied.length === 0
      ? `history database ${where}: up to date\n`
      : `history database ${where}: applied ${applied.join(', ')}\n`)
  } finally {
    await close()
  }
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? '' : 'db:migrate failed: '}${(err as Error).message}\n`)
  process.exitCode = 1
}
