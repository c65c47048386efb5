// History's shared types: queries' filters and totals, and the RecordHook seam (re-exported by public.ts).
import type { Kysely } from 'kysely'
import type { StoredIdentification } from './records.ts'

export interface ListFilter {
  category?: string | null
  make?: string | null
  from?: Date | null
  to?: Date | null
  /** Only this bulk job's. */
  bulkJobId?: string | null
  /** Only this caller's; null: every caller's (ReadAll). */
  callerId: string | null
}

export interface UsageTotals {
  key: string
  identifications: number
  failed: number
  cached: number
  /** Every token, Global Batch's included. */
  promptTokens: number
  completionTokens: number
  /** Of those, the tokens of identifications a Global Batch answered (priced at the batch prices). */
  batchPromptTokens: number
  batchCompletionTokens: number
}

export type UsageGrouping = 'DAY' | 'CALLER' | 'MODEL'

/** A record just written, as a RecordHook sees it (ids already made storable). */
export interface WrittenRecord {
  id: string
  /** The identification succeeded (outcome OK). */
  ok: boolean
  /** Epoch milliseconds. */
  createdAt: number
  // Always set by history (optional for the hooks' tests):
  /** OK, or the failure's code. */
  outcome?: string
  /** The bulk job it was part of; null for any other (webhooks announce those only by the job). */
  bulkJobId?: string | null
  promptTokens?: number
  completionTokens?: number
}

/**
 * Rows a feature writes in the records' transaction (a crash between the two would lose them), on both paths:
 * `kysely` for PostgreSQL and the Kysely path; on SQLite the records are written on a worker thread, which imports
 * `sqliteModule` (a closure cannot cross threads). That module exports
 * `prepare(db: DatabaseSync): (written: readonly WrittenRecord[]) => void`, called once the schema is migrated;
 * the function it returns runs inside the batch's BEGIN IMMEDIATE … COMMIT.
 */
export interface RecordHook {
  name: string
  kysely (trx: Kysely<any>, written: readonly WrittenRecord[]): Promise<void>
  sqliteModule: URL
}

/** What `prepare` of a RecordHook's sqliteModule returns. */
export type SqliteRecordHook = (written: readonly WrittenRecord[]) => void

/** A recorded identification, for a feature that reports on it (webhooks' payload); undefined when gone (withdrawn or purged). */
export type RecordedOutcome =
  | { ok: true, identification: StoredIdentification }
  | { ok: false, failure: FailedIdentification }

export interface FailedIdentification {
  id: string
  callerId: string
  /** The error's code. */
  code: string
  language: string
  backend: string
  durationMs: number
  createdAt: Date
}
