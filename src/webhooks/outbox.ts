// The webhook outbox, written in the records' transaction (a RecordHook: a crash between the two would lose
// events): one delivery per (record, enabled endpoint subscribed to its event type); with no endpoint enabled, one
// small read and nothing written. The body is made when it is delivered (so its thumbnail URL is fresh). On SQLite
// the records are written on history's writer thread, which loads sqlite-outbox.ts instead.
import type { Kysely } from 'kysely'
import type { RecordHook, WrittenRecord } from '../history/public.ts'
import { outboxRows } from './outbox-rows.ts'
import type { WebhookTables } from './tables.ts'

/** Rows per INSERT: 8 parameters each, far below PostgreSQL's 65,535 whatever the batch and the endpoints. */
const ROWS_PER_INSERT = 1000

async function insertOutbox (trx: Kysely<any>, written: readonly WrittenRecord[]): Promise<void> {
  if (written.length === 0) return
  const db = trx as Kysely<WebhookTables>
  const subscriptions = await db.selectFrom('webhook_endpoint_events as s')
    .innerJoin('webhook_endpoints as w', 'w.id', 's.endpoint_id')
    .select(['s.endpoint_id', 's.event_type'])
    .where('w.disabled_at', 'is', null)
    .execute()
  const rows = outboxRows(written, subscriptions, Date.now())
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    await db.insertInto('webhook_deliveries').values(rows.slice(i, i + ROWS_PER_INSERT)).execute()
  }
}

/** One feature event's deliveries (a bulk job completed), in the transaction that made it happen. */
export async function insertFeatureEvent (trx: Kysely<any>, eventType: string, subjectId: string, createdAt: number): Promise<void> {
  const db = trx as Kysely<WebhookTables>
  const subscriptions = await db.selectFrom('webhook_endpoint_events as s')
    .innerJoin('webhook_endpoints as w', 'w.id', 's.endpoint_id')
    .select(['s.endpoint_id'])
    .where('w.disabled_at', 'is', null).where('s.event_type', '=', eventType)
    .execute()
  if (subscriptions.length === 0) return
  const now = Date.now()
  await db.insertInto('webhook_deliveries').values(subscriptions.map(s => ({
    endpoint_id: s.endpoint_id,
    message_id: `msg_${subjectId}`, // one per event (a subject has one event of this type), whatever the endpoint or attempt
    event_type: eventType,
    identification_id: subjectId, // the subject's id (a bulk job's here)
    created_at: createdAt,
    state: 'pending',
    attempts: 0,
    next_attempt_at: now
  }))).execute()
}

export const outboxHook: RecordHook = {
  name: 'webhooks',
  kysely: insertOutbox,
  sqliteModule: new URL('./sqlite-outbox.ts', import.meta.url)
}
