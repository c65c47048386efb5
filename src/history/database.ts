// Opens the history database: node:sqlite in a file under DATA_DIR, or a pg pool for DATABASE_URL,
// behind one Kysely instance, and brings its schema up to date (migrations, under a lock).
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely'
import pg from 'pg'
import type { DatabaseTarget } from './config.ts'
import { migrationProvider } from './migrations/index.ts'
import { openSqlite } from './sqlite.ts'
import { startSqliteWriter, type SqliteWriter } from './sqlite-writer.ts'
import type { HistoryDatabase } from './tables.ts'
import { StorableTextPlugin } from '../storable-text.ts'

export interface HistoryDb {
  db: Kysely<HistoryDatabase>
  dialect: DatabaseTarget['dialect']
  /** SQLite: where records and thumbnails are written, off the request thread. PostgreSQL: null (the pool is asynchronous). */
  writer: SqliteWriter | null
  close (): Promise<void>
}

/** `onError`: a background problem worth a log line (a failed SQLite checkpoint, a writer thread lost). */
export function openDatabase (target: DatabaseTarget, onError: (message: string) => void = () => {}): HistoryDb {
  if (target.dialect === 'sqlite') {
    mkdirSync(path.dirname(target.file), { recursive: true })
    const { database, raw } = openSqlite(target.file)
    const writer = startSqliteWriter(raw, target.file, onError)
    const db = new Kysely<HistoryDatabase>({ dialect: new SqliteDialect({ database }), plugins: [new StorableTextPlugin()] })
    return {
      db,
      dialect: 'sqlite',
      writer,
      close: async () => {
        await writer.close() // its last checkpoint takes everything written
        await db.destroy()
      }
    }
  }
  const pool = new pg.Pool({
    connectionString: target.url,
    max: target.poolSize,
    // Fail fast when the server is down (records then wait in the buffer); never hang a query forever.
    connectionTimeoutMillis: 5_000,
    query_timeout: 30_000,
    idleTimeoutMillis: 30_000,
    types: { getTypeParser: numericTypeParser }
  })
  // A connection dropping (the server restarting or stopping) must never crash the process: an idle client's
  // error comes to the pool; a checked-out client's (between two queries of a transaction) to the client itself,
  // which has no listener while checked out. The query in flight fails on its own; the pool replaces the client.
  pool.on('error', () => {})
  pool.on('connect', client => { client.on('error', () => {}) })
  const db = new Kysely<HistoryDatabase>({ dialect: new PostgresDialect({ pool }), plugins: [new StorableTextPlugin()] })
  return { db, dialect: 'postgres', writer: null, close: async () => { await db.destroy() } }
}

const INT8 = 20
const NUMERIC = 1700

// Our bigints are epoch milliseconds and counters, far below 2^53: read them as numbers, not strings.
// SUM over bigint is numeric in PostgreSQL: the same.
function numericTypeParser (oid: number, format?: string): (value: string) => unknown {
  if (oid === INT8 || oid === NUMERIC) return Number
  return pg.types.getTypeParser(oid, format as 'text')
}

/** Applies every pending migration; on PostgreSQL under an advisory lock, so instances starting together take turns. */
export async function migrateToLatest (db: Kysely<HistoryDatabase>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: migrationProvider })
  const { error, results = [] } = await migrator.migrateToLatest()
  const failed = results.find(result => result.status === 'Error')
  if (error !== undefined) {
    const which = failed === undefined ? 'history migrations' : `history migration ${failed.migrationName}`
    throw new Error(`${which} failed: ${(error as Error).message ?? String(error)}`, { cause: error })
  }
  return results.filter(result => result.status === 'Success').map(result => result.migrationName)
}
