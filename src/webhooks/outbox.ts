// The webhook outbox, written in the records' transaction (a RecordHook: a crash between the two would lose
// events): one delivery per (record, enabled endpoint subscribed to its event type), in one INSERT … SELECT,
// whatever the batch's size; with no endpoints it writes nothing. The body is made when it is delivered (so its
// thumbnail URL is fresh). On SQLite the records are written on history's writer thread: sqlite-outbox.ts.
import { type Kysely, sql } from 'kysely'
import type { RecordHook, WrittenRecord } from '../history/public.ts'
import type { HistoryTables } from '../history/tables.ts'
import { EVENT_COMPLETED, EVENT_FAILED, type WebhookTables } from './tables.ts'

/** The outcome of a successful identification, as history stores it. */
const OK = 'OK'

async function insertOutbox (trx: Kysely<HistoryTables & WebhookTables>, written: readonly WrittenRecord[]): Promise<void> {
  if (written.length === 0) return
  const eventType = sql<string>`case when i.outcome = ${sql.lit(OK)} then ${sql.lit(EVENT_COMPLETED)} else ${sql.lit(EVENT_FAILED)} end`
  await trx.insertInto('webhook_deliveries')
    .columns(['endpoint_id', 'message_id', 'event_type', 'identification_id', 'created_at', 'state', 'attempts', 'next_attempt_at'])
    .expression(trx.selectFrom('identifications as i')
      .innerJoin('webhook_endpoint_events as s', join => join.on(sql<boolean>`s.event_type = ${eventType}`))
      .innerJoin('webhook_endpoints as w', 'w.id', 's.endpoint_id')
      .select([
        's.endpoint_id',
        // webhook-id: one per event, whatever the endpoint or attempt (the receiver's idempotency key).
        sql<string>`${sql.lit('msg_')} || i.id`.as('message_id'),
        's.event_type',
        'i.id',
        'i.created_at',
        sql<string>`${sql.lit('pending')}`.as('state'),
        sql<number>`${sql.lit(0)}`.as('attempts'),
        sql<number>`${sql.lit(Date.now())}`.as('next_attempt_at')
      ])
      .where('i.id', 'in', written.map(record => record.id))
      .where('w.disabled_at', 'is', null))
    .execute()
}

export const outboxHook: RecordHook = {
  name: 'webhooks',
  kysely: insertOutbox,
  sqliteModule: new URL('./sqlite-outbox.ts', import.meta.url)
}
