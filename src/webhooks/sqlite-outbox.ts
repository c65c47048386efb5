// The webhook outbox on SQLite, as outbox.ts writes it: loaded by history's writer thread (a RecordHook's
// sqliteModule) and run inside each batch's transaction, with statements prepared once.
import type { DatabaseSync } from 'node:sqlite'
import type { SqliteRecordHook } from '../history/public.ts'
import { EVENT_COMPLETED, EVENT_FAILED } from './tables.ts'

const OK = 'OK'

export function prepare (db: DatabaseSync): SqliteRecordHook {
  const outbox = db.prepare(
    'insert into webhook_deliveries (endpoint_id, message_id, event_type, identification_id, created_at, state, attempts, next_attempt_at) ' +
    "select s.endpoint_id, 'msg_' || i.id, s.event_type, i.id, i.created_at, 'pending', 0, ? " +
    'from identifications as i ' +
    `inner join webhook_endpoint_events as s on s.event_type = case when i.outcome = '${OK}' then '${EVENT_COMPLETED}' else '${EVENT_FAILED}' end ` +
    'inner join webhook_endpoints as w on w.id = s.endpoint_id ' +
    'where i.id in (select value from json_each(?)) and w.disabled_at is null')
  const anyEndpoint = db.prepare('select 1 as one from webhook_endpoints where disabled_at is null limit 1')
  return written => {
    if (written.length > 0 && anyEndpoint.get() !== undefined) outbox.run(Date.now(), JSON.stringify(written.map(record => record.id)))
  }
}
