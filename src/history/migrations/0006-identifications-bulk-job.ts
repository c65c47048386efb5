// The bulk job an identification was part of (Identification.bulkJobId, IdentificationFilter.bulkJobId), and the
// Global Batch tokens of usage (priced at VISION_BATCH_PRICE_*_PER_MTOK). 0006: 0005 is the bulk jobs' tables.
import { type Kysely, sql } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('identifications').addColumn('bulk_job_id', 'varchar(36)').execute()
  await db.schema.createIndex('identifications_bulk_job').on('identifications')
    .columns(['bulk_job_id', 'created_at', 'id']).where(sql.ref('bulk_job_id'), 'is not', null).execute()
  await db.schema.alterTable('usage_daily').addColumn('batch_prompt_tokens', 'bigint', col => col.notNull().defaultTo(0)).execute()
  await db.schema.alterTable('usage_daily').addColumn('batch_completion_tokens', 'bigint', col => col.notNull().defaultTo(0)).execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('usage_daily').dropColumn('batch_completion_tokens').execute()
  await db.schema.alterTable('usage_daily').dropColumn('batch_prompt_tokens').execute()
  await db.schema.dropIndex('identifications_bulk_job').execute()
  await db.schema.alterTable('identifications').dropColumn('bulk_job_id').execute()
}
