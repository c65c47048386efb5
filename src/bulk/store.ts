// Every query of bulk jobs, written once for SQLite and PostgreSQL (Kysely): jobs and their items, the
// worker's leases, and the GLOBAL_BATCH mode's chunks. Items are never marked answered here: that happens in
// history's record transaction (record-hook.ts).
import { type Kysely, sql } from 'kysely'
import type { Position } from '../history/public.ts'
import type { SentImageInfo } from '../identification/types.ts'
import type { BulkChunk, ChunkChange, FirstLook, LowImageInfo, PreparedItem } from './modes/mode.ts'
import {
  FINISHED_ITEM, FINISHED_JOB, type BulkItemStatus, type BulkItemsTable, type BulkJobStatus, type BulkJobsTable, type BulkTables
} from './tables.ts'

/** Rows per INSERT of items: 12 parameters each, far below PostgreSQL's 65,535. */
const ITEMS_PER_INSERT = 500

export type BulkJobRow = BulkJobsTable
export type BulkItemRow = BulkItemsTable

export interface NewJob {
  id: string
  callerId: string
  callerKind: string
  status: BulkJobStatus
  mode: BulkJobsTable['mode']
  detail: string
  language: string
  instructions: string
  archivePath: string
  errorCode?: string | null
}

export interface NewItem {
  id: string
  seq: number
  name: string
  entryIndex: number
  /** PENDING, or FAILED at once (an archive entry refused: `code`). */
  status: 'PENDING' | 'FAILED'
  code: string | null
}

export interface BulkCounts {
  total: number
  pending: number
  succeeded: number
  failed: number
  cancelled: number
}

export class BulkStore {
  readonly db: Kysely<BulkTables>
  readonly #postgres: boolean
  readonly #now: () => number

  constructor (db: Kysely<BulkTables>, postgres: boolean, now: () => number = Date.now) {
    this.db = db
    this.#postgres = postgres
    this.#now = now
  }

  /** A job and its items, in one transaction. */
  async createJob (job: NewJob, items: readonly NewItem[]): Promise<void> {
    const now = this.#now()
    await this.db.transaction().execute(async trx => {
      await trx.insertInto('bulk_jobs').values({
        id: job.id,
        caller_id: job.callerId,
        caller_kind: job.callerKind,
        status: job.status,
        mode: job.mode,
        detail: job.detail,
        language: job.language,
        instructions: job.instructions,
        archive_path: job.archivePath,
        total: items.length,
        prompt_tokens: 0,
        completion_tokens: 0,
        cancel_requested: 0,
        error_code: job.errorCode ?? null,
        lease_until: null,
        leased_by: null,
        next_run_at: now,
        created_at: now,
        updated_at: now,
        completed_at: null
      }).execute()
      for (let i = 0; i < items.length; i += ITEMS_PER_INSERT) {
        await trx.insertInto('bulk_items').values(items.slice(i, i + ITEMS_PER_INSERT).map(item => ({
          id: item.id,
          job_id: job.id,
          seq: item.seq,
          name: item.name,
          entry_index: item.entryIndex,
          status: item.status,
          code: item.code,
          sent: null,
          chunk_id: null,
          online_retry: 0,
          look: 1,
          low_sent: null,
          first_look: null,
          lease_until: null,
          leased_by: null
        }))).execute()
      }
    })
  }

  /** The caller's jobs not yet finished. */
  async activeJobs (callerId: string): Promise<number> {
    const row = await this.db.selectFrom('bulk_jobs').select(eb => eb.fn.countAll<number>().as('n'))
      .where('caller_id', '=', callerId).where('status', 'not in', FINISHED_JOB).executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /** A job; only the caller's own unless callerId is null (ReadAll). */
  async getJob (id: string, callerId: string | null): Promise<BulkJobRow | undefined> {
    let query = this.db.selectFrom('bulk_jobs').selectAll().where('id', '=', id)
    if (callerId !== null) query = query.where('caller_id', '=', callerId)
    return await query.executeTakeFirst()
  }

  /** Newest first, keyset-paginated on (created_at, id); only the caller's own unless callerId is null. */
  async listJobs (callerId: string | null, first: number, after: Position | null): Promise<{ rows: BulkJobRow[], hasNextPage: boolean }> {
    let query = this.db.selectFrom('bulk_jobs').selectAll()
    if (callerId !== null) query = query.where('caller_id', '=', callerId)
    if (after !== null) {
      query = query.where(eb => eb.or([
        eb('created_at', '<', after.createdAt),
        eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])
      ]))
    }
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(first + 1).execute()
    return { rows: rows.slice(0, first), hasNextPage: rows.length > first }
  }

  /** Items by status (from the (job_id, status, seq) index). */
  async counts (jobId: string): Promise<BulkCounts> {
    const rows = await this.db.selectFrom('bulk_items').select(eb => ['status', eb.fn.countAll<number>().as('n')])
      .where('job_id', '=', jobId).groupBy('status').execute()
    const counts: BulkCounts = { total: 0, pending: 0, succeeded: 0, failed: 0, cancelled: 0 }
    for (const row of rows) {
      const n = Number(row.n)
      counts.total += n
      if (row.status === 'SUCCEEDED') counts.succeeded += n
      else if (row.status === 'FAILED') counts.failed += n
      else if (row.status === 'CANCELLED') counts.cancelled += n
      else counts.pending += n
    }
    return counts
  }

  /** A job's items in seq order, `first` after the seq `afterSeq`, of one status or all. */
  async listItems (jobId: string, first: number, afterSeq: number | null, status: BulkItemStatus | null):
  Promise<{ rows: BulkItemRow[], hasNextPage: boolean }> {
    let query = this.db.selectFrom('bulk_items').selectAll().where('job_id', '=', jobId)
    if (status !== null) query = query.where('status', '=', status)
    if (afterSeq !== null) query = query.where('seq', '>', afterSeq)
    const rows = await query.orderBy('seq').limit(first + 1).execute()
    return { rows: rows.slice(0, first), hasNextPage: rows.length > first }
  }

  /** Asks a job not finished to stop; the caller's own unless callerId is null (Admin). The job after, or undefined. */
  async requestCancel (id: string, callerId: string | null): Promise<BulkJobRow | undefined> {
    let query = this.db.updateTable('bulk_jobs').set({ cancel_requested: 1, next_run_at: this.#now(), updated_at: this.#now() })
      .where('id', '=', id).where('status', 'not in', FINISHED_JOB)
    if (callerId !== null) query = query.where('caller_id', '=', callerId)
    await query.execute()
    return await this.getJob(id, callerId)
  }

  // --- the worker ---

  /**
   * Claims a due job not finished whose lease has passed (or is none), for `leaseMs`: one instance works a job at a
   * time, and one killed loses its claim when the lease passes. PostgreSQL: FOR UPDATE SKIP LOCKED.
   */
  async claimJob (owner: string, leaseMs: number, exclude: readonly string[] = []): Promise<BulkJobRow | undefined> {
    const now = this.#now()
    let due = this.db.selectFrom('bulk_jobs').select('id')
      .where('status', 'not in', FINISHED_JOB).where('next_run_at', '<=', now)
      .where(eb => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
    if (exclude.length > 0) due = due.where('id', 'not in', exclude)
    due = due.orderBy('next_run_at').limit(1)
    // A read first, on its own: an idle poll takes no write lock (on SQLite, an UPDATE would wait for the writer thread's).
    if (await due.executeTakeFirst() === undefined) return undefined
    // Then one statement that writes first. A transaction that read, then wrote, failed on SQLite with "database is
    // locked" at once (no busy timeout) whenever another connection held or had committed a write since its read.
    return await this.db.updateTable('bulk_jobs').set({ lease_until: now + leaseMs, leased_by: owner })
      .where('id', 'in', this.#postgres ? due.forUpdate().skipLocked() : due)
      // Checked again by the update itself: a job another instance claimed meanwhile is not taken twice.
      .where(eb => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .returningAll()
      .executeTakeFirst()
  }

  /** Frees every job's lease (SQLite at start-up: one process per file, so any lease is a dead process's). */
  async clearLeases (): Promise<void> {
    await this.db.updateTable('bulk_jobs').set({ lease_until: null, leased_by: null }).where('leased_by', 'is not', null).execute()
  }

  /** Extends this owner's lease; false when it lost it (another instance took the job over). */
  async renewLease (jobId: string, owner: string, leaseMs: number): Promise<boolean> {
    const result = await this.db.updateTable('bulk_jobs').set({ lease_until: this.#now() + leaseMs })
      .where('id', '=', jobId).where('leased_by', '=', owner).executeTakeFirst()
    return Number(result.numUpdatedRows) > 0
  }

  /** Gives the job back, to be run again at `nextRunAt`. */
  async releaseJob (jobId: string, owner: string, nextRunAt: number): Promise<void> {
    await this.db.updateTable('bulk_jobs').set({ lease_until: null, leased_by: null, next_run_at: nextRunAt })
      .where('id', '=', jobId).where('leased_by', '=', owner).execute()
  }

  async setStatus (jobId: string, status: BulkJobStatus): Promise<void> {
    await this.db.updateTable('bulk_jobs').set({ status, updated_at: this.#now() })
      .where('id', '=', jobId).where('status', 'not in', FINISHED_JOB).execute()
  }

  async cancelRequested (jobId: string): Promise<boolean> {
    const row = await this.db.selectFrom('bulk_jobs').select('cancel_requested').where('id', '=', jobId).executeTakeFirst()
    return row === undefined || row.cancel_requested === 1
  }

  /** Which of `ids` are jobs not finished. */
  async unfinishedJobs (ids: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>()
    for (let i = 0; i < ids.length; i += ITEMS_PER_INSERT) {
      const rows = await this.db.selectFrom('bulk_jobs').select('id')
        .where('id', 'in', ids.slice(i, i + ITEMS_PER_INSERT)).where('status', 'not in', FINISHED_JOB).execute()
      for (const row of rows) found.add(row.id)
    }
    return found
  }

  /** Items of a status in seq order, `size` after `afterSeq`. */
  async itemsWithStatus (jobId: string, status: BulkItemStatus, size: number, afterSeq = -1): Promise<BulkItemRow[]> {
    return await this.db.selectFrom('bulk_items').selectAll()
      .where('job_id', '=', jobId).where('status', '=', status).where('seq', '>', afterSeq)
      .orderBy('seq').limit(size).execute()
  }

  /** Items not yet answered (PENDING, PREPARED, SUBMITTED). */
  async unfinishedItems (jobId: string): Promise<number> {
    const row = await this.db.selectFrom('bulk_items').select(eb => eb.fn.countAll<number>().as('n'))
      .where('job_id', '=', jobId).where('status', 'not in', FINISHED_ITEM).executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /** `low`: its LOW image too (ADAPTIVE in GLOBAL_BATCH: two looks in two batches). */
  async markPrepared (itemId: string, sent: SentImageInfo, low: LowImageInfo | null = null): Promise<void> {
    await this.db.updateTable('bulk_items')
      .set({ status: 'PREPARED', sent: JSON.stringify(sent), low_sent: low === null ? null : JSON.stringify(low) })
      .where('id', '=', itemId).where('status', '=', 'PENDING').execute()
  }

  /** An item whose record will never come (history set it aside): FAILED with `code`. */
  async failItem (itemId: string, code: string): Promise<void> {
    await this.db.updateTable('bulk_items').set({ status: 'FAILED', code })
      .where('id', '=', itemId).where('status', 'not in', FINISHED_ITEM).execute()
  }

  /** Ends every item not yet answered CANCELLED. */
  async cancelUnfinishedItems (jobId: string): Promise<void> {
    await this.db.updateTable('bulk_items').set({ status: 'CANCELLED', code: 'CANCELLED' })
      .where('job_id', '=', jobId).where('status', 'not in', FINISHED_ITEM).execute()
  }

  /**
   * Ends the job (COMPLETED, FAILED, CANCELLED): no longer leased. `also` runs in the same transaction when this call
   * ended it (another feature's rows: the webhook outbox), so that what announces the end is written exactly once.
   */
  async finishJob (
    jobId: string, status: BulkJobStatus, errorCode: string | null = null, also?: (trx: Kysely<any>, at: number) => Promise<void>
  ): Promise<boolean> {
    const now = this.#now()
    return await this.db.transaction().execute(async trx => {
      const result = await trx.updateTable('bulk_jobs')
        .set({ status, completed_at: now, updated_at: now, archive_path: null, lease_until: null, leased_by: null, error_code: errorCode })
        .where('id', '=', jobId).where('status', 'not in', FINISHED_JOB).executeTakeFirst()
      const ended = Number(result.numUpdatedRows) > 0
      if (ended && also !== undefined) await also(trx, now)
      return ended
    })
  }

  /** Deletes jobs finished before `before` (their items and chunks cascade), at most `batch`; how many went. */
  async purge (before: number, batch: number): Promise<number> {
    const ids = (await this.db.selectFrom('bulk_jobs').select('id').where('created_at', '<', before)
      .where('status', 'in', FINISHED_JOB).limit(batch).execute()).map(row => row.id)
    if (ids.length === 0) return 0
    await this.db.transaction().execute(async trx => {
      await trx.deleteFrom('bulk_items').where('job_id', 'in', ids).execute()
      await trx.deleteFrom('bulk_chunks').where('job_id', 'in', ids).execute()
      await trx.deleteFrom('bulk_jobs').where('id', 'in', ids).execute()
    })
    return ids.length
  }

  // --- the GLOBAL_BATCH mode's state ---

  async chunks (jobId: string): Promise<BulkChunk[]> {
    const rows = await this.db.selectFrom('bulk_chunks').selectAll().where('job_id', '=', jobId).orderBy('created_at').orderBy('id').execute()
    return rows.map(row => ({
      id: row.id,
      jobId: row.job_id,
      status: row.status,
      inputFileId: row.input_file_id,
      batchId: row.batch_id,
      outputFileId: row.output_file_id,
      errorFileId: row.error_file_id,
      lines: Number(row.lines),
      bytes: Number(row.bytes),
      nextPollAt: Number(row.next_poll_at),
      createdAt: Number(row.created_at),
      look: Number(row.look) === 2 ? 2 : 1
    }))
  }

  async createChunk (
    jobId: string, chunk: { id: string, status: string, lines: number, bytes: number, look: 1 | 2 }, itemIds: readonly string[]
  ): Promise<void> {
    await this.db.transaction().execute(async trx => {
      await trx.insertInto('bulk_chunks').values({
        id: chunk.id,
        job_id: jobId,
        status: chunk.status,
        input_file_id: null,
        batch_id: null,
        output_file_id: null,
        error_file_id: null,
        lines: chunk.lines,
        bytes: chunk.bytes,
        next_poll_at: 0,
        lease_until: null,
        leased_by: null,
        created_at: this.#now(),
        look: chunk.look
      }).execute()
      for (let i = 0; i < itemIds.length; i += ITEMS_PER_INSERT) {
        await trx.updateTable('bulk_items').set({ status: 'SUBMITTED', chunk_id: chunk.id })
          .where('job_id', '=', jobId).where('id', 'in', itemIds.slice(i, i + ITEMS_PER_INSERT)).where('status', '=', 'PREPARED')
          .where('look', '=', chunk.look).execute()
      }
    })
  }

  async updateChunk (id: string, change: ChunkChange): Promise<void> {
    if (Object.keys(change).length === 0) return
    await this.db.updateTable('bulk_chunks').set(change).where('id', '=', id).execute()
  }

  async chunkItems (chunkId: string, size: number, afterSeq = -1): Promise<BulkItemRow[]> {
    return await this.db.selectFrom('bulk_items').selectAll()
      .where('chunk_id', '=', chunkId).where('status', '=', 'SUBMITTED').where('seq', '>', afterSeq)
      .orderBy('seq').limit(size).execute()
  }

  async markOnlineRetry (itemIds: readonly string[]): Promise<void> {
    for (let i = 0; i < itemIds.length; i += ITEMS_PER_INSERT) {
      await this.db.updateTable('bulk_items').set({ online_retry: 1 }).where('id', 'in', itemIds.slice(i, i + ITEMS_PER_INSERT)).execute()
    }
  }

  /** An ADAPTIVE item's LOW answer was not good enough: PREPARED again, for its HIGH look (once: only from SUBMITTED at look 1). */
  async secondLook (itemId: string, chunkId: string, firstLook: FirstLook): Promise<boolean> {
    const result = await this.db.updateTable('bulk_items')
      .set({ status: 'PREPARED', look: 2, chunk_id: null, first_look: JSON.stringify(firstLook) })
      .where('id', '=', itemId).where('chunk_id', '=', chunkId).where('status', '=', 'SUBMITTED').where('look', '=', 1)
      .executeTakeFirst()
    return Number(result.numUpdatedRows) > 0
  }

  /** A trivial query: is the database answering? */
  async ping (): Promise<void> {
    await sql`select 1`.execute(this.db)
  }
}

/** An item row as a mode sees it once prepared; `path` is where its prepared image is, `lowPath` its LOW one's. */
export function preparedItemOf (row: BulkItemRow, path: string, lowPath: string): PreparedItem {
  const low = row.low_sent === null ? null : { ...JSON.parse(row.low_sent) as LowImageInfo, path: lowPath }
  return {
    id: row.id,
    seq: Number(row.seq),
    name: row.name,
    status: row.status as PreparedItem['status'],
    path,
    sent: JSON.parse(row.sent ?? '{}') as SentImageInfo,
    chunkId: row.chunk_id,
    onlineRetry: Number(row.online_retry),
    look: Number(row.look) === 2 ? 2 : 1,
    low,
    firstLook: row.first_look === null ? null : JSON.parse(row.first_look) as FirstLook
  }
}
