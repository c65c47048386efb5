// What other features see of history (types only): `app.history`, and the hook that writes a feature's rows in
// the same transaction as the records (webhooks' outbox). Import it with `import type`.
import type { Kysely } from 'kysely'
import type { StoredIdentification } from './records.ts'
import type {
  FailedIdentification, ListFilter, RecordedOutcome, RecordHook, SqliteRecordHook, UsageGrouping, UsageTotals, WrittenRecord
} from './types.ts'
import type { Position } from './cursor.ts'

export type {
  StoredIdentification, ListFilter, UsageGrouping, UsageTotals, Position,
  FailedIdentification, RecordedOutcome, RecordHook, SqliteRecordHook, WrittenRecord
}

export interface History {
  /** A successful identification; only the caller's own unless callerId is null (ReadAll). STORAGE_UNAVAILABLE: database down. */
  get (id: string, callerId: string | null): Promise<StoredIdentification | undefined>
  /** Any recorded identification (success or failure), whoever's; undefined when gone. */
  getRecord (id: string): Promise<RecordedOutcome | undefined>
  /** Newest first, keyset-paginated. */
  list (filter: ListFilter, first: number, after: Position | null): Promise<{ rows: StoredIdentification[], hasNextPage: boolean }>
  usage (from: Date, to: Date, callerId: string | null, groupBy: UsageGrouping): Promise<UsageTotals[]>
  /** Withdraws a successful identification; false when there is none the caller may delete. */
  delete (id: string, callerId: string | null): Promise<boolean>
  /** VISION_PRICE_*_PER_MTOK, for usage's estimatedCost; null when unset. */
  prices: { inputPerMillion: number, outputPerMillion: number } | null
  /** VISION_BATCH_PRICE_*_PER_MTOK (default half of `prices`), for Global Batch tokens; null when unset. */
  batchPrices: { inputPerMillion: number, outputPerMillion: number } | null
  getThumbnail (id: string): Promise<Buffer | undefined>
  /** Stores a thumbnail (off the request thread on SQLite). */
  saveThumbnail (id: string, jpeg: Uint8Array, createdAt: Date): Promise<void>
  /** Resolves once everything recorded so far is written (or the writer gave up for now). */
  flushed (): Promise<void>
  /**
   * Read-your-writes: while this instance still holds the caller's record `id` unwritten (its answer has just
   * gone), waits for it (at most `maxWaitMs`, DURABLE_WAIT_MS by default). `callerId` null: whoever's (ReadAll).
   * False: it still waits in this instance's buffer (the database slow or down).
   */
  recordWritten (id: string, callerId: string | null, maxWaitMs?: number): Promise<boolean>
  /**
   * While `needed()` says so, an identification's answer waits (at most DURABLE_WAIT_MS) until its record is
   * written (with every RecordHook's rows), so that a crash after the answer loses none of them.
   */
  writeBeforeAnswering (needed: () => boolean): void
  /** Adds rows to every record batch's transaction; before the app is ready. */
  onRecordTransaction (hook: RecordHook): void
}

/** What tests reach behind the public surface (historyInternals in plugin.ts): never a feature, which uses History and app.database. */
export interface HistoryInternals {
  store: Omit<import('./store.ts').HistoryStore, 'db'> & { db: Kysely<any> }
  recorder: import('./recorder.ts').HistoryRecorder
  dialect: 'sqlite' | 'postgres'
  /** The result cache for the identification flow; null when RESULT_CACHE_TTL_S=0. */
  answers: import('../identification/types.ts').AnswerCache | null
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The identification history; null when HISTORY=off. */
    history: History | null
  }
}
