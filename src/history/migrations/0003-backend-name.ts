// Which of several Azure OpenAI deployments answered (AZURE_OPENAI_BACKENDS): Identification.backendName.
// 0003 because 0002 is the webhooks' outbox, built alongside.
import type { Kysely } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('identifications').addColumn('backend_name', 'varchar(64)').execute()
}

export async function down (db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('identifications').dropColumn('backend_name').execute()
}
