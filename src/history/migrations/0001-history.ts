// The first history schema. Times are epoch milliseconds (bigint); ids are UUID text.
// Indexes serve: the caller's newest first (keyset on created_at, id), every caller's newest first
// (ReadAll), category and make filters (their own tables, each the driving index), cache lookups,
// retention purges (created_at) and idempotency expiry.
import { type Kysely, PostgresAdapter, sql } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  await db.schema.createTable('identifications')
    .addColumn('id', 'varchar(36)', col => col.primaryKey())
    .addColumn('caller_id', 'varchar(255)', col => col.notNull())
    .addColumn('caller_kind', 'varchar(32)', col => col.notNull())
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addColumn('outcome', 'varchar(64)', col => col.notNull())
    .addColumn('cached', 'integer', col => col.notNull().defaultTo(0))
    .addColumn('language', 'varchar(35)', col => col.notNull())
    .addColumn('detail', 'varchar(8)', col => col.notNull())
    .addColumn('backend', 'varchar(32)', col => col.notNull())
    .addColumn('model', 'varchar(255)')
    .addColumn('answer', 'text')
    .addColumn('vehicles', 'text')
    .addColumn('image', 'text')
    .addColumn('image_sha256', 'varchar(64)')
    .addColumn('prompt_tokens', 'integer', col => col.notNull().defaultTo(0))
    .addColumn('completion_tokens', 'integer', col => col.notNull().defaultTo(0))
    .addColumn('duration_ms', 'integer', col => col.notNull().defaultTo(0))
    .addColumn('cache_key', 'varchar(64)')
    .addColumn('has_thumbnail', 'integer', col => col.notNull().defaultTo(0))
    // 1 once withdrawn (deleteIdentification): its content is erased, but the row stays so that usage keeps its cost.
    .addColumn('deleted', 'integer', col => col.notNull().defaultTo(0))
    .execute()
  await db.schema.createIndex('identifications_caller_outcome_created')
    .on('identifications').columns(['caller_id', 'outcome', 'created_at', 'id']).execute()
  await db.schema.createIndex('identifications_outcome_created')
    .on('identifications').columns(['outcome', 'created_at', 'id']).execute()
  await db.schema.createIndex('identifications_created')
    .on('identifications').column('created_at').execute()
  await db.schema.createIndex('identifications_cache_key')
    .on('identifications').columns(['cache_key', 'created_at']).where(sql.ref('cache_key'), 'is not', null).execute()

  for (const [table, column] of [['identification_categories', 'category'], ['identification_makes', 'make_key']] as const) {
    await db.schema.createTable(table)
      .addColumn('identification_id', 'varchar(36)', col => col.notNull().references('identifications.id').onDelete('cascade'))
      .addColumn(column, 'varchar(255)', col => col.notNull())
      .addColumn('caller_id', 'varchar(255)', col => col.notNull())
      .addColumn('created_at', 'bigint', col => col.notNull())
      .addPrimaryKeyConstraint(`${table}_pk`, ['identification_id', column])
      .execute()
    await db.schema.createIndex(`${table}_all`).on(table).columns([column, 'created_at', 'identification_id']).execute()
    await db.schema.createIndex(`${table}_caller`).on(table).columns([column, 'caller_id', 'created_at', 'identification_id']).execute()
  }

  // One row per distinct (category, make) of an identification's vehicles: drives a filter on both, so that
  // "John Deere combines" is an index range, however rare the make or common the category.
  await db.schema.createTable('identification_vehicles')
    .addColumn('identification_id', 'varchar(36)', col => col.notNull().references('identifications.id').onDelete('cascade'))
    .addColumn('category', 'varchar(255)', col => col.notNull())
    .addColumn('make_key', 'varchar(255)', col => col.notNull())
    .addColumn('caller_id', 'varchar(255)', col => col.notNull())
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addPrimaryKeyConstraint('identification_vehicles_pk', ['identification_id', 'category', 'make_key'])
    .execute()
  await db.schema.createIndex('identification_vehicles_all').on('identification_vehicles')
    .columns(['category', 'make_key', 'created_at', 'identification_id']).execute()
  await db.schema.createIndex('identification_vehicles_caller').on('identification_vehicles')
    .columns(['category', 'make_key', 'caller_id', 'created_at', 'identification_id']).execute()

  await db.schema.createTable('thumbnails')
    // No foreign key: a thumbnail is made off the request path and may be stored before its record (buffered while the database was down).
    .addColumn('identification_id', 'varchar(36)', col => col.primaryKey())
    .addColumn('jpeg', sql`${sql.raw(isPostgres(db) ? 'bytea' : 'blob')}`, col => col.notNull())
    .addColumn('created_at', 'bigint', col => col.notNull())
    .execute()

  await db.schema.createTable('usage_daily')
    .addColumn('day', 'integer', col => col.notNull())
    .addColumn('caller_id', 'varchar(255)', col => col.notNull())
    .addColumn('model', 'varchar(255)', col => col.notNull())
    .addColumn('identifications', 'bigint', col => col.notNull().defaultTo(0))
    .addColumn('failed', 'bigint', col => col.notNull().defaultTo(0))
    .addColumn('cached', 'bigint', col => col.notNull().defaultTo(0))
    .addColumn('prompt_tokens', 'bigint', col => col.notNull().defaultTo(0))
    .addColumn('completion_tokens', 'bigint', col => col.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('usage_daily_pk', ['day', 'caller_id', 'model'])
    .execute()
  await db.schema.createIndex('usage_daily_caller').on('usage_daily').columns(['caller_id', 'day']).execute()

  await db.schema.createTable('idempotency_keys')
    .addColumn('caller_id', 'varchar(255)', col => col.notNull())
    .addColumn('key', 'varchar(255)', col => col.notNull())
    .addColumn('fingerprint', 'varchar(64)', col => col.notNull())
    .addColumn('state', 'varchar(16)', col => col.notNull())
    .addColumn('identification_id', 'varchar(36)')
    .addColumn('created_at', 'bigint', col => col.notNull())
    .addColumn('expires_at', 'bigint', col => col.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['caller_id', 'key'])
    .execute()
  await db.schema.createIndex('idempotency_keys_expires').on('idempotency_keys').column('expires_at').execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  const tables = ['idempotency_keys', 'usage_daily', 'thumbnails', 'identification_vehicles', 'identification_makes', 'identification_categories', 'identifications']
  for (const table of tables) {
    await db.schema.dropTable(table).ifExists().execute()
  }
}

function isPostgres (db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}
