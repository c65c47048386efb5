// Why a write failed, from the driver's own error: the data (this record cannot be stored as it is: a
// constraint, a value out of range or too long) or the database (unreachable, restarting, busy, not migrated
// yet). A data error is the record's; writing it again fails again, so it must be set aside, never retried
// for ever. Anything else is taken for the database's, and retried: a record is never dropped on a guess.
// PostgreSQL: SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
// node:sqlite: the primary result code of `errcode` (https://sqlite.org/rescode.html).

/** SQLSTATE classes of a row that cannot be stored: 22 data exception, 23 integrity constraint, 54 program limit (a row too big). */
const POSTGRES_DATA_CLASSES = new Set(['22', '23', '54'])
/** P0001: RAISE EXCEPTION in a trigger refusing the row. */
const POSTGRES_DATA_CODES = new Set(['P0001'])
/** SQLITE_TOOBIG (18), SQLITE_CONSTRAINT (19: CHECK, NOT NULL, UNIQUE, a trigger's RAISE), SQLITE_MISMATCH (20). */
const SQLITE_DATA_RESULTS = new Set([18, 19, 20])

export interface WriteFailure {
  /** The record's data cannot be stored: set it aside. Otherwise the database is unreachable or busy: retry. */
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
    return { data: SQLITE_DATA_RESULTS.has(e.errcode & 0xff), reason }
  }
  // pg's DatabaseError: a five-character SQLSTATE and the server's severity (a Node system error has no severity).
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string') {
    const reason: Record<string, string | number> = { sqlstate: e.code }
    for (const field of ['constraint', 'table', 'column'] as const) {
      const value = e[field]
      if (typeof value === 'string') reason[field] = value
    }
    return { data: POSTGRES_DATA_CLASSES.has(e.code.slice(0, 2)) || POSTGRES_DATA_CODES.has(e.code), reason }
  }
  return { data: false, reason: typeof e.code === 'string' ? { code: e.code } : {} }
}
