// The database as a capability: opens the connection (SQLite file or PostgreSQL pool), collects every
// feature's migrations and brings the schema up to date once the app is ready (retrying while the database
// cannot be reached: the service starts degraded rather than not at all), maps a failed query to
// STORAGE_UNAVAILABLE, and closes last. No database configured (HISTORY=off): `app.database` is null.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { DatabaseSync } from 'node:sqlite'
import type { Kysely, Migration } from 'kysely'
import { AppError, StorageUnavailableError } from '../errors.ts'
import type { DatabaseTarget } from './config.ts'
import { MigrationRegistry, migrateToLatest } from './migrations.ts'
import { openDatabase, type EntraLoginSource } from './open.ts'

export interface Database {
  dialect: 'sqlite' | 'postgres'
  /** Each feature sees its own tables: `db.withTables<ItsTables>()`. */
  db: Kysely<{}>
  /** SQLite: the raw connection and its file (a feature's writer thread opens its own). PostgreSQL: null. */
  sqlite: { raw: DatabaseSync, file: string } | null
  /** A feature's migrations, by their stored names; before the app is ready. Throws on a name given twice. */
  registerMigrations (feature: string, migrations: Record<string, Migration>): void
  /** True once the schema is up to date. */
  ready (): boolean
  /** Called once the schema is up to date (at once if it is). */
  onReady (fn: () => void): void
  /**
   * Runs a query; any database failure becomes STORAGE_UNAVAILABLE (503), logged once here with its cause, so
   * that a resolver never shows a driver's message (it may name hosts or users). One of ours (AppError) passes.
   */
  query<T> (run: () => Promise<T>): Promise<T>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The database; null when none is configured (HISTORY=off). */
    database: Database | null
  }
}

export interface DatabasePluginOptions {
  config: DatabaseTarget | null
  /** DATABASE_AUTH=entra: the token source of DATABASE_ENTRA_SCOPE (app.azureTokens) and its fetch timeout. */
  entra?: Omit<EntraLoginSource, 'log'>
}

const MIGRATION_RETRY_MS = 5_000
const UNAVAILABLE = 'The history database is unavailable; identifications still work. Try again later.'

async function databasePlugin (app: FastifyInstance, { config, entra }: DatabasePluginOptions): Promise<void> {
  if (config === null) {
    app.decorate('database', null)
    return
  }
  const log = app.log.child({ component: 'database' })
  let opened: ReturnType<typeof openDatabase<{}>>
  try {
    opened = openDatabase<{}>(config, entra === undefined ? undefined : { ...entra, log })
  } catch (err) {
    // SQLite only (a pool opens lazily): a folder that cannot be written is a configuration error.
    throw new Error(`history: cannot open ${config.dialect === 'sqlite' ? config.file : 'the database'} ` +
      `(${(err as Error).message}). Set DATA_DIR to a writable folder, DATABASE_URL for PostgreSQL, or HISTORY=off.`, { cause: err })
  }
  const registry = new MigrationRegistry()
  let migrated = false
  const waiting: Array<() => void> = []
  let migrationTimer: NodeJS.Timeout | null = null
  const migrate = async (): Promise<void> => {
    try {
      const applied = await migrateToLatest(opened.db, registry.provider)
      migrated = true
      if (applied.length > 0) log.info({ migrations: applied, dialect: opened.dialect }, 'database: migrations applied')
      for (const fn of waiting.splice(0)) fn()
    } catch (err) {
      log.error({ err }, `database: cannot bring the schema up to date; retrying in ${MIGRATION_RETRY_MS / 1000} s`)
      migrationTimer = setTimeout(() => { migrationTimer = null; void migrate() }, MIGRATION_RETRY_MS)
      migrationTimer.unref()
    }
  }

  const database: Database = {
    dialect: opened.dialect,
    db: opened.db,
    sqlite: opened.sqlite,
    registerMigrations: (feature, migrations) => { registry.register(feature, migrations) },
    ready: () => migrated,
    onReady: fn => { if (migrated) fn(); else waiting.push(fn) },
    async query (run) {
      if (!migrated) throw new StorageUnavailableError(UNAVAILABLE, 5)
      try {
        return await run()
      } catch (err) {
        if (err instanceof AppError) throw err // one of ours (BAD_USER_INPUT from a cursor, ...)
        log.error({ err }, 'database: query failed')
        throw new StorageUnavailableError(UNAVAILABLE, 5, { cause: err })
      }
    }
  }
  app.decorate('database', database)

  // Registered before every feature's worker: started (migrated) first, stopped (closed) last, after the
  // features have written what they hold.
  app.workers.register({
    name: 'database',
    start: async () => {
      registry.close()
      await migrate()
    },
    stop: async () => {
      if (migrationTimer !== null) clearTimeout(migrationTimer)
      await opened.close()
    }
  })
}

export default fp(databasePlugin, { name: 'database', fastify: '5.x', dependencies: ['workers'] })
