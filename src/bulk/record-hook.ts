// The bulk items' outcomes written in history's record transaction (a RecordHook): the Kysely path (PostgreSQL);
// on SQLite history's writer thread loads sqlite-record-hook.ts instead (the same statements).
import type { Kysely } from 'kysely'
import type { RecordHook, WrittenRecord } from '../history/public.ts'
import { itemOutcomes } from './record-rows.ts'
import type { BulkTables } from './tables.ts'

async function writeOutcomes (trx: Kysely<any>, written: readonly WrittenRecord[]): Promise<void> {
  const db = trx as Kysely<BulkTables>
  const now = Date.now()
  for (const outcome of itemOutcomes(written)) {
    const result = await db.updateTable('bulk_items').set({ status: outcome.status, code: outcome.code })
      .where('id', '=', outcome.id).where('job_id', '=', outcome.jobId).where('status', 'in', ['PENDING', 'PREPARED', 'SUBMITTED'])
      .executeTakeFirst()
    if (Number(result.numUpdatedRows) === 0) continue // not an item still waiting: its tokens are not counted twice
    if (outcome.promptTokens + outcome.completionTokens === 0) continue
    await db.updateTable('bulk_jobs').set(eb => ({
      prompt_tokens: eb('prompt_tokens', '+', outcome.promptTokens),
      completion_tokens: eb('completion_tokens', '+', outcome.completionTokens),
      updated_at: now
    })).where('id', '=', outcome.jobId).execute()
  }
}

export const bulkRecordHook: RecordHook = {
  name: 'bulk',
  kysely: writeOutcomes,
  sqliteModule: new URL('./sqlite-record-hook.ts', import.meta.url)
}
