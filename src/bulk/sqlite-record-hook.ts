// The bulk items' outcomes on SQLite, as record-hook.ts writes them: loaded by history's writer thread (a
// RecordHook's sqliteModule: a closure cannot cross threads), run inside each batch's transaction.
import type { DatabaseSync } from 'node:sqlite'
import type { SqliteRecordHook } from '../history/public.ts'
import { ITEM_OUTCOME_SQL, itemOutcomes, JOB_TOKENS_SQL } from './record-rows.ts'

export function prepare (db: DatabaseSync): SqliteRecordHook {
  const item = db.prepare(ITEM_OUTCOME_SQL)
  const tokens = db.prepare(JOB_TOKENS_SQL)
  return written => {
    const now = Date.now()
    for (const outcome of itemOutcomes(written)) {
      if (item.run(outcome.status, outcome.code, outcome.id, outcome.jobId).changes === 0) continue
      if (outcome.promptTokens + outcome.completionTokens === 0) continue
      tokens.run(outcome.promptTokens, outcome.completionTokens, now, outcome.jobId)
    }
  }
}
