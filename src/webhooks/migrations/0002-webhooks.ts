// Webhooks: endpoints, the event types they subscribe to, the outbox of deliveries (written in the same
// transaction as the history record) and each attempt's log. Indexes serve the worker's claim (due pending
// deliveries), an endpoint's delivery log (keyset on id) and the outbox insert (endpoints by event type).
import { type Kysely, PostgresAdapter, sql } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter
  await db.schema.createTable('webhook_endpoints')
    .addColumn('id', 'varchar(36)', col => col.primaryKey())
    .addColumn('url', 'varchar(2048)', col => col.notNull())
    .addColumn('description', 'varchar(500)')
    .addColumn('secret', 'varchar(100)', col => col.notNull())
    .addColumn('previous_secret', 'varchar(100)')
    .addColumn('previous_secret_expires_at', 'bigint')
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addColumn('updated_at', 'bigint', col => col.notNull())
    .addColumn('disabled_at', 'bigint')
    .addColumn('disabled_reason', 'varchar(500)')
    .addColumn('last_success_at', 'bigint')
    .addColumn('failing_since', 'bigint')
    .execute()

  await db.schema.createTable('webhook_endpoint_events')
    .addColumn('endpoint_id', 'varchar(36)', col => col.notNull().references('webhook_endpoints.id').onDelete('cascade'))
    .addColumn('event_type', 'varchar(64)', col => col.notNull())
    .addPrimaryKeyConstraint('webhook_endpoint_events_pk', ['event_type', 'endpoint_id'])
    .execute()

  await db.schema.createTable('webhook_deliveries')
    .addColumn('id', postgres ? 'bigserial' : 'integer', col => postgres ? col.primaryKey() : col.primaryKey().autoIncrement())
    .addColumn('endpoint_id', 'varchar(36)', col => col.notNull().references('webhook_endpoints.id').onDelete('cascade'))
    .addColumn('message_id', 'varchar(64)', col => col.notNull())
    .addColumn('event_type', 'varchar(64)', col => col.notNull())
    .addColumn('identification_id', 'varchar(36)', col => col.notNull())
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addColumn('state', 'varchar(16)', col => col.notNull())
    .addColumn('attempts', 'integer', col => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint', col => col.notNull())
    .addColumn('lease_until', 'bigint')
    .addColumn('leased_by', 'varchar(64)')
    .addColumn('completed_at', 'bigint')
    .execute()
  await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries')
    .columns(['next_attempt_at']).where(sql.ref('state'), '=', 'pending').execute()
  await db.schema.createIndex('webhook_deliveries_endpoint').on('webhook_deliveries').columns(['endpoint_id', 'id']).execute()

  await db.schema.createTable('webhook_attempts')
    .addColumn('delivery_id', 'bigint', col => col.notNull().references('webhook_deliveries.id').onDelete('cascade'))
    .addColumn('attempt', 'integer', col => col.notNull())
    .addColumn('started_at', 'bigint', col => col.notNull())
    .addColumn('duration_ms', 'integer', col => col.notNull())
    .addColumn('status', 'integer')
    .addColumn('error', 'varchar(500)')
    .addColumn('response', 'text')
    .addPrimaryKeyConstraint('webhook_attempts_pk', ['delivery_id', 'attempt'])
    .execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  for (const table of ['webhook_attempts', 'webhook_deliveries', 'webhook_endpoint_events', 'webhook_endpoints']) {
    await db.schema.dropTable(table).ifExists().execute()
  }
}
