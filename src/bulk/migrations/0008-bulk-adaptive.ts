// ADAPTIVE detail in GLOBAL_BATCH jobs (two batches: LOW looks, then HIGH looks for the unsure ones). Each item keeps
// which look it is waiting for (`look`: 1 LOW, 2 HIGH), its LOW image's facts (`low_sent`, JSON, null when it has
// none: a one-phase item) and, once its LOW answer asked for a closer look, that answer (`first_look`, JSON: it is
// kept when the HIGH look fails, and its tokens count in the identification's usage). Each chunk keeps its look, so
// that a restart between the phases resumes each chunk and item where it was.
import type { Kysely } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('bulk_items').addColumn('look', 'smallint', col => col.notNull().defaultTo(1)).execute()
  await db.schema.alterTable('bulk_items').addColumn('low_sent', 'text').execute()
  await db.schema.alterTable('bulk_items').addColumn('first_look', 'text').execute()
  await db.schema.alterTable('bulk_chunks').addColumn('look', 'smallint', col => col.notNull().defaultTo(1)).execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('bulk_chunks').dropColumn('look').execute()
  await db.schema.alterTable('bulk_items').dropColumn('first_look').execute()
  await db.schema.alterTable('bulk_items').dropColumn('low_sent').execute()
  await db.schema.alterTable('bulk_items').dropColumn('look').execute()
}
