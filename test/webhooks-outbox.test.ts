// The outbox RecordHook on its own, on SQLite (both paths: Kysely, and the module history's writer thread loads)
// and PostgreSQL: one delivery per (written record, enabled endpoint subscribed to its event type), made from the
// WrittenRecords alone (no identification row exists here: no webhook statement reads history's tables), none
// for a disabled endpoint, nothing with no endpoint, and batches larger than one INSERT.
import t from 'tap'
import type { Test } from 'tap'
import { join } from 'node:path'
import type { DatabaseSync } from 'node:sqlite'
import type { Kysely } from 'kysely'
import { openDatabase, type OpenedDatabase } from '../src/database/open.ts'
import type { DatabaseTarget } from '../src/database/config.ts'
import type { SqliteRecordHook, WrittenRecord } from '../src/history/public.ts'
import { migrateToLatest } from '../src/migrations.ts'
import { outboxHook } from '../src/webhooks/outbox.ts'
import type { WebhookTables } from '../src/webhooks/tables.ts'
import { tempDataDir } from './helper.ts'
import { createDatabase, startPostgres } from './support/postgres.ts'

const COMPLETED_ONLY = '00000000-0000-4000-8000-00000000000a'
const BOTH = '00000000-0000-4000-8000-00000000000b'
const DISABLED = '00000000-0000-4000-8000-00000000000c'

async function withEndpoints (t: Test, target: DatabaseTarget): Promise<OpenedDatabase<WebhookTables>> {
  const opened = openDatabase<WebhookTables>(target)
  t.teardown(opened.close)
  await migrateToLatest(opened.db)
  const unset = { description: null, previous_secret: null, previous_secret_expires_at: null, disabled_reason: null, last_success_at: null }
  const endpoint = (id: string, disabledAt: number | null) => ({
    ...unset, id, url: `https://example.com/${id}`, secret: 'whsec_x', created_at: 1, updated_at: 1, disabled_at: disabledAt, failing_since: null
  })
  await opened.db.insertInto('webhook_endpoints').values([endpoint(COMPLETED_ONLY, null), endpoint(BOTH, null), endpoint(DISABLED, 5)]).execute()
  await opened.db.insertInto('webhook_endpoint_events').values([
    { endpoint_id: COMPLETED_ONLY, event_type: 'identification.completed' },
    { endpoint_id: BOTH, event_type: 'identification.completed' },
    { endpoint_id: BOTH, event_type: 'identification.failed' },
    { endpoint_id: DISABLED, event_type: 'identification.completed' },
    { endpoint_id: DISABLED, event_type: 'identification.failed' }
  ]).execute()
  return opened
}

type Written = (written: readonly WrittenRecord[]) => Promise<void>

const viaKysely = (db: Kysely<WebhookTables>): Written => async written => {
  await db.transaction().execute(async trx => { await outboxHook.kysely(trx, written) })
}

/** As history's writer thread does: the hook's module, loaded by URL, run inside BEGIN IMMEDIATE … COMMIT. */
async function viaWriterModule (raw: DatabaseSync): Promise<Written> {
  const { prepare } = await import(outboxHook.sqliteModule.href) as { prepare: (db: DatabaseSync) => SqliteRecordHook }
  const write = prepare(raw)
  return async written => {
    raw.exec('BEGIN IMMEDIATE')
    write(written)
    raw.exec('COMMIT')
  }
}

async function outbox (db: Kysely<WebhookTables>, prefix: string): Promise<string[]> {
  const rows = await db.selectFrom('webhook_deliveries')
    .select(['endpoint_id', 'message_id', 'event_type', 'identification_id', 'created_at', 'state', 'attempts', 'next_attempt_at'])
    .where('identification_id', 'like', `${prefix}%`)
    .execute()
  return rows.map(r => {
    if (r.message_id !== `msg_${r.identification_id}` || r.state !== 'pending' || r.attempts !== 0 || !(Number(r.next_attempt_at) > 0)) {
      throw new Error(`unexpected row ${JSON.stringify(r)}`)
    }
    return `${r.endpoint_id.slice(-1)} ${r.identification_id} ${r.event_type} ${r.created_at}`
  }).sort()
}

async function checkOutbox (t: Test, db: Kysely<WebhookTables>, write: Written, prefix: string): Promise<void> {
  await write([{ id: `${prefix}-ok`, ok: true, createdAt: 1000 }, { id: `${prefix}-failed`, ok: false, createdAt: 2000 }])
  t.same(await outbox(db, prefix), [
    `a ${prefix}-ok identification.completed 1000`,
    `b ${prefix}-failed identification.failed 2000`,
    `b ${prefix}-ok identification.completed 1000`
  ], 'each enabled endpoint gets the event types it subscribed to; the disabled one none')

  const many = Array.from({ length: 700 }, (_, i) => ({ id: `${prefix}-many-${i}`, ok: true, createdAt: 3000 + i }))
  await write(many)
  t.equal((await outbox(db, `${prefix}-many-`)).length, 1400, 'a batch of more rows than one INSERT holds')
  await write([])
  t.equal((await outbox(db, prefix)).length, 1403, 'an empty batch writes nothing')
}

async function checkNoEndpoint (t: Test, db: Kysely<WebhookTables>, write: Written, prefix: string): Promise<void> {
  await db.updateTable('webhook_endpoints').set({ disabled_at: 7 }).execute()
  await write([{ id: `${prefix}-none`, ok: true, createdAt: 1 }])
  t.same(await outbox(db, `${prefix}-none`), [], 'no enabled endpoint: nothing written')
  await db.updateTable('webhook_endpoints').set({ disabled_at: null }).where('id', '!=', DISABLED).execute()
}

t.test('SQLite: the Kysely path and the writer thread\'s module write the same rows', async t => {
  const opened = await withEndpoints(t, { dialect: 'sqlite', file: join(tempDataDir(), 'history.db') })
  const kysely = viaKysely(opened.db)
  const writer = await viaWriterModule(opened.sqlite!.raw)
  await checkOutbox(t, opened.db, kysely, 'k')
  await checkOutbox(t, opened.db, writer, 'w')
  await checkNoEndpoint(t, opened.db, kysely, 'k')
  await checkNoEndpoint(t, opened.db, writer, 'w')
})

t.test('PostgreSQL: the Kysely path', async t => {
  const server = await startPostgres(t)
  const url = await createDatabase(server.url, 'outbox')
  const opened = await withEndpoints(t, { dialect: 'postgres', url, poolSize: 2 })
  await checkOutbox(t, opened.db, viaKysely(opened.db), 'p')
  await checkNoEndpoint(t, opened.db, viaKysely(opened.db), 'p')
})
