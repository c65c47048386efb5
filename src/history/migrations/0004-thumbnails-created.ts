// Retention purges thumbnails by their own age too: one whose record was never written (dropped from a full
// buffer, lost in a crash) has no record to be purged with. This index finds the old ones without a scan.
import type { Kysely } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('thumbnails_created').on('thumbnails').column('created_at').execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('thumbnails_created').execute()
}
