// Why a write failed, from the driver's own error: the data (this record cannot be stored as it is: a
// constraint, a value out of range or too long), the database (unreachable, restarting, busy, out of space, not
// migrated yet, a lost connection: whatever has no code from the database itself), or an error the database
// raised that is neither (a trigger's own code, a function failing on a value): unknown. A data error is the
// record's; writing it again fails again, so it must be set aside, never retried for ever. The database's is
// retried. An unknown one may be either: the caller decides on evidence (history/recorder.ts: does the database
// write other records?), never on a guess.
// PostgreSQL: SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
// node:sqlite: the primary result code of `errcode` (https://sqlite.org/rescode.html).

/** SQLSTATE classes of a row that cannot be stored: 22 data exception, 23 integrity constraint, 54 program limit (a row too big). */
const POSTGRES_DATA_CLASSES = new Set(['22', '23', '54'])
/** P0001: RAISE EXCEPTION in a trigger refusing the row. */
const POSTGRES_DATA_CODES = new Set(['P0001'])
/**
 * The database's own state, whatever the record: 08 connection, 25 transaction state (a read-only replica), 28
 * authorization, 3D no such database, 40 rolled back (deadlock, serialization), 42 syntax or access (a table not
 * migrated, a privilege revoked), 53 resources (disk full), 55 object state (a lock not available), 57 operator
 * intervention (shutdown, cancelled), 58 system, XX internal.
 */
const POSTGRES_DATABASE_CLASSES = new Set(['08', '25', '28', '3D', '40', '42', '53', '55', '57', '58', 'XX'])
/** SQLITE_TOOBIG (18), SQLITE_CONSTRAINT (19: CHECK, NOT NULL, UNIQUE, a trigger's RAISE), SQLITE_MISMATCH (20). */
const SQLITE_DATA_RESULTS = new Set([18, 19, 20])
/**
 * ABORT 4, BUSY 5, LOCKED 6, NOMEM 7, READONLY 8, INTERRUPT 9, IOERR 10, CORRUPT 11, FULL 13, CANTOPEN 14,
 * PROTOCOL 15, SCHEMA 17, NOTADB 26. SQLITE_ERROR (1) is unknown: a missing table, or a function refusing a value.
 */
const SQLITE_DATABASE_RESULTS = new Set([4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 17, 26])

/** data: the record's. database: the database's state. unknown: raised by the database, known to be neither. */
export type WriteFailureKind = 'data' | 'database' | 'unknown'

export interface WriteFailure {
  kind: WriteFailureKind
  /** kind === 'data': the record's data cannot be stored: set it aside. Otherwise never set aside on this error alone. */
  data: boolean
  /** What the log may show: the driver's code and the constraint, table or column named. Never a value. */
  reason: Record<string, string | number>
}

export function classifyWriteError (err: unknown): WriteFailure {
  const e = (err ?? {}) as {
    code?: unknown, errcode?: unknown, errstr?: unknown, constraint?: unknown, table?: unknown, column?: unknown, severity?: unknown
  }
  if (typeof e.errcode === 'number' && e.code === 'ERR_SQLITE_ERROR') {
    const reason: Record<string, string | number> = { sqlite: e.errcode }
    if (typeof e.errstr === 'string') reason.error = e.errstr
    const primary = e.errcode & 0xff
    return failure(SQLITE_DATA_RESULTS.has(primary) ? 'data' : SQLITE_DATABASE_RESULTS.has(primary) ? 'database' : 'unknown', reason)
  }
  // pg's DatabaseError: a five-character SQLSTATE and the server's severity (a Node system error has no severity).
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string') {
    const reason: Record<string, string | number> = { sqlstate: e.code }
    for (const field of ['constraint', 'table', 'column'] as const) {
      const value = e[field]
      if (typeof value === 'string') reason[field] = value
    }
    const sqlClass = e.code.slice(0, 2)
    return failure(POSTGRES_DATA_CLASSES.has(sqlClass) || POSTGRES_DATA_CODES.has(e.code)
      ? 'data'
      : POSTGRES_DATABASE_CLASSES.has(sqlClass) ? 'database' : 'unknown', reason)
  }
  // No code from the database itself: a Node system error, a lost connection, a timeout, a writer thread gone.
  return failure('database', typeof e.code === 'string' ? { code: e.code } : {})
}

function failure (kind: WriteFailureKind, reason: Record<string, string | number>): WriteFailure {
  return { kind, data: kind === 'data', reason }
}
