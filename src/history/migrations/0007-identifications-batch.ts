// Which identifications a Global Batch answered (1): usage prices their tokens at VISION_BATCH_PRICE_*_PER_MTOK,
// also for the partial days it sums from the records (whole days: usage_daily.batch_*_tokens, migration 0006).
import type { Kysely } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('identifications').addColumn('batch', 'smallint', col => col.notNull().defaultTo(0)).execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('identifications').dropColumn('batch').execute()
}
