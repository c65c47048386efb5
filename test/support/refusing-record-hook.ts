// A RecordHook's SQLite module that refuses every batch (test/database.test.ts): what it writes fails, and with
// it the records of the same transaction.
import type { DatabaseSync } from 'node:sqlite'
import type { SqliteRecordHook } from '../../src/history/public.ts'

export function prepare (_db: DatabaseSync): SqliteRecordHook {
  return () => { throw new Error('refused by the hook') }
}
