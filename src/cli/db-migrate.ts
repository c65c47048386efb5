// `npm run db:migrate`: brings the history database (DATABASE_URL, else DATA_DIR's SQLite file) up to
// date and exits, for deployments that migrate before rolling out. The service also migrates at
// start-up, under the same lock (PostgreSQL advisory lock), so running both is safe.
import { loadConfig, ConfigError } from '../config.ts'
import { pino } from 'pino'
import { createAzureTokens } from '../azure/credential.ts'
import { openDatabase } from '../database/open.ts'
import { migrateToLatest } from '../migrations.ts'

try {
  const { database, azureIdentity } = loadConfig()
  if (database === null) {
    process.stdout.write('HISTORY=off: nothing is kept, so there is no database to migrate\n')
    process.exit(0)
  }
  const where = database.dialect === 'sqlite' ? database.file : 'DATABASE_URL (PostgreSQL)'
  // DATABASE_AUTH=entra: the managed identity's token, as the service logs in (warnings and errors to stderr).
  const log = pino({ level: 'warn' }, pino.destination(2))
  const entra = database.dialect === 'postgres' && database.entra !== undefined
    ? { tokens: createAzureTokens(azureIdentity, log).forScope(database.entra.scope, 'database'), tokenTimeoutMs: azureIdentity.tokenTimeoutMs, log }
    : undefined
  const { db, close } = openDatabase(database, entra)
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
