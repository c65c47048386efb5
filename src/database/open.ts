// Opens the database: node:sqlite in a file (its folder made), or a pg pool for DATABASE_URL, behind one
// Kysely instance with the storable-text plugin. Which tables it holds is each feature's business.
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely'
import pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import type { TokenSource } from '../azure/token-source.ts'
import type { DatabaseTarget } from './config.ts'
import { createEntraPool } from './entra-pool.ts'
import { openSqlite } from './sqlite.ts'
import { StorableTextPlugin } from '../storable-text.ts'

export interface OpenedDatabase<DB = any> {
  db: Kysely<DB>
  dialect: DatabaseTarget['dialect']
  /** SQLite: the raw connection (for a feature's writer thread) and its file. PostgreSQL: null. */
  sqlite: { raw: DatabaseSync, file: string } | null
  close (): Promise<void>
}

/** What a PostgreSQL target with DATABASE_AUTH=entra needs: the token source of its scope. */
export interface EntraLoginSource {
  tokens: TokenSource
  /** AZURE_TOKEN_TIMEOUT_MS: a new connection waits that long for a token (and a little more). */
  tokenTimeoutMs: number
  log: FastifyBaseLogger
}

export function openDatabase<DB = any> (target: DatabaseTarget, entra?: EntraLoginSource): OpenedDatabase<DB> {
  if (target.dialect === 'sqlite') {
    mkdirSync(path.dirname(target.file), { recursive: true })
    const { database, raw } = openSqlite(target.file)
    const db = new Kysely<DB>({ dialect: new SqliteDialect({ database }), plugins: [new StorableTextPlugin()] })
    return { db, dialect: 'sqlite', sqlite: { raw, file: target.file }, close: async () => { await db.destroy() } }
  }
  if (target.entra !== undefined) {
    if (entra === undefined) throw new Error('database: DATABASE_AUTH=entra needs the managed identity\'s tokens')
    const pool = createEntraPool({
      url: target.url,
      poolSize: target.poolSize,
      ca: target.entra.ca,
      tokens: entra.tokens,
      tokenTimeoutMs: entra.tokenTimeoutMs,
      log: entra.log,
      types: { getTypeParser: numericTypeParser as pg.CustomTypesConfig['getTypeParser'] }
    })
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), plugins: [new StorableTextPlugin()] })
    return { db, dialect: 'postgres', sqlite: null, close: async () => { await db.destroy() } }
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
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), plugins: [new StorableTextPlugin()] })
  return { db, dialect: 'postgres', sqlite: null, close: async () => { await db.destroy() } }
}

const INT8 = 20
const NUMERIC = 1700

// Our bigints are epoch milliseconds and counters, far below 2^53: read them as numbers, not strings.
// SUM over bigint is numeric in PostgreSQL: the same.
export function numericTypeParser (oid: number, format?: string): (value: string) => unknown {
  if (oid === INT8 || oid === NUMERIC) return Number
  return pg.types.getTypeParser(oid, format as 'text')
}
