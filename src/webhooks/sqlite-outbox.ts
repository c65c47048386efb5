// The webhook outbox on SQLite, as outbox.ts writes it: loaded by history's writer thread (a RecordHook's
// sqliteModule: a closure cannot cross threads) and run inside each batch's transaction, statements prepared once.
import type { DatabaseSync } from 'node:sqlite'
import type { SqliteRecordHook } from '../history/public.ts'
import { outboxRows, SUBSCRIPTIONS_SQL, type Subscription } from './outbox-rows.ts'

export function prepare (db: DatabaseSync): SqliteRecordHook {
  const subscriptions = db.prepare(SUBSCRIPTIONS_SQL)
  const insert = db.prepare(
    'insert into webhook_deliveries (endpoint_id, message_id, event_type, identification_id, created_at, state, attempts, next_attempt_at) ' +
    'values (?, ?, ?, ?, ?, \'pending\', 0, ?)')
  return written => {
    if (written.length === 0) return
    const rows = outboxRows(written, subscriptions.all() as unknown as Subscription[], Date.now())
    for (const row of rows) {
      insert.run(row.endpoint_id, row.message_id, row.event_type, row.identification_id, row.created_at, row.next_attempt_at)
    }
  }
}
