// Kysely's SqliteDialect speaks better-sqlite3's interface; Node's own node:sqlite (no native add-on
// to build) differs in two details this adapter bridges: parameters are spread, not an array, and a
// statement says whether it returns rows through columns(), not a `reader` flag.
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite'
import type { SqliteDatabase, SqliteStatement } from 'kysely'

export function openSqlite (file: string): { database: SqliteDatabase, raw: DatabaseSync } {
  const raw = new DatabaseSync(file)
  // WAL: readers never wait for the writer; NORMAL sync is durable across process crashes in WAL mode.
  raw.exec('PRAGMA journal_mode = WAL')
  raw.exec('PRAGMA synchronous = NORMAL')
  raw.exec('PRAGMA foreign_keys = ON')
  // Another process (npm run db:migrate, a second instance on the same volume) may hold the write lock briefly.
  raw.exec('PRAGMA busy_timeout = 5000')
  const statements = new Map<string, StatementSync>()
  return {
    raw,
    database: {
      close: () => { raw.close() },
      prepare (sql: string): SqliteStatement {
        let statement = statements.get(sql)
        if (statement === undefined) {
          statement = raw.prepare(sql)
          // Kysely's queries are few and fixed in shape; bound the cache anyway (a filter makes a handful of shapes).
          if (statements.size < 500) statements.set(sql, statement)
        }
        const prepared = statement
        const params = (values: ReadonlyArray<unknown>) => values.map(toSqlite)
        return {
          reader: prepared.columns().length > 0,
          all: (values) => prepared.all(...params(values)),
          run: (values) => {
            const result = prepared.run(...params(values))
            return { changes: result.changes, lastInsertRowid: result.lastInsertRowid }
          },
          iterate: (values) => prepared.iterate(...params(values))
        }
      }
    }
  }
}

/** node:sqlite binds numbers, bigints, strings, null and byte arrays; booleans become 0/1. */
function toSqlite (value: unknown): SQLInputValue {
  if (typeof value === 'boolean') return value ? 1 : 0
  if (value === undefined) return null
  return value as SQLInputValue
}
