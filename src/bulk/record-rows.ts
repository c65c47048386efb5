// What a batch of history records does to bulk jobs, in the records' own transaction: each record of a bulk item
// ends its item (SUCCEEDED, or FAILED with the record's code) and adds its tokens to its job. So an item is
// answered exactly when its identification is durable; a crash between the two cannot happen. Shared by the
// Kysely hook (record-hook.ts) and history's SQLite writer thread (sqlite-record-hook.ts, these statements).
import type { WrittenRecord } from '../history/public.ts'

export interface ItemOutcome {
  id: string
  jobId: string
  status: 'SUCCEEDED' | 'FAILED'
  code: string | null
  promptTokens: number
  completionTokens: number
}

/** The records of bulk items, as item outcomes. */
export function itemOutcomes (written: readonly WrittenRecord[]): ItemOutcome[] {
  const outcomes: ItemOutcome[] = []
  for (const record of written) {
    if (record.bulkJobId == null) continue
    outcomes.push({
      id: record.id,
      jobId: record.bulkJobId,
      status: record.ok ? 'SUCCEEDED' : 'FAILED',
      code: record.ok ? null : (record.outcome ?? 'INTERNAL_SERVER_ERROR').slice(0, 64),
      promptTokens: record.promptTokens ?? 0,
      completionTokens: record.completionTokens ?? 0
    })
  }
  return outcomes
}

/** Sets an item's outcome unless it has one already (a record re-run after a crash changes nothing). */
export const ITEM_OUTCOME_SQL = 'update bulk_items set status = ?, code = ? where id = ? and job_id = ? and status in (\'PENDING\', \'PREPARED\', \'SUBMITTED\')'
export const JOB_TOKENS_SQL = 'update bulk_jobs set prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ?, updated_at = ? where id = ?'
