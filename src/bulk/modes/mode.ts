// What a mode is: how a job's prepared photos get their answers. The worker (../worker.ts) receives and prepares a
// job's items, then hands the job to its mode (ONLINE: ./online.ts; GLOBAL_BATCH: ./global-batch.ts) through a
// ModeContext, and calls `run` until it says the job is done; between runs (a poll later, a restart, another
// instance) everything a mode needs is in the database: the items' statuses and its chunks.
//
// Exactly once: an item's id is its identification's id (and its Global Batch custom_id). An item ends SUCCEEDED or
// FAILED in the very transaction that writes its identification record (../record-hook.ts): a mode never marks an
// item answered itself; it announces the outcome (`answered`, `identifyOnline`) and history does the rest.
import type { FastifyBaseLogger } from 'fastify'
import type { RequestedDetail } from '../../image/tokens.ts'
import type { SentImageInfo } from '../../identification/types.ts'
import type { PreparedCall, PreparedOutcome } from '../../identification/plugin.ts'
import type { BulkChunksTable, BulkItemStatus, BulkModeName } from '../tables.ts'
import type { SecondLookReason } from '../../identification/adaptive.ts'
import type { BatchAnswer } from '../global-batch/results.ts'

/** The job as a mode sees it: who asked, and the question every photo is asked with. */
export interface BulkJobSpec {
  id: string
  callerId: string
  callerKind: string
  mode: BulkModeName
  detail: RequestedDetail
  language: string
  instructions: string
  createdAt: number
}

/** A photo prepared for the model (PREPARED), or submitted in a chunk and not yet answered (SUBMITTED). */
export interface PreparedItem {
  /** Its id = its identification's id = its custom_id. */
  id: string
  seq: number
  /** Its path in the archive (or `images[i]`). */
  name: string
  status: Extract<BulkItemStatus, 'PREPARED' | 'SUBMITTED'>
  /** The prepared image (upright, stripped, downscaled to the job's detail; ADAPTIVE: HIGH): read it with `ctx.read`. */
  path: string
  /** The upload's facts and the prepared image's (its sentMimeType is the type to send it as). */
  sent: SentImageInfo
  /** The chunk it was submitted in; null while PREPARED. */
  chunkId: string | null
  /** 1 once sent again through the online path (after its batch line failed): never a third time. */
  onlineRetry: number
  /** The look it waits for: 1, or 2 once its ADAPTIVE LOW answer asked for a closer (HIGH) look. */
  look: 1 | 2
  /** Its LOW image, prepared from the same decode as `path`'s (ADAPTIVE in GLOBAL_BATCH); null for any other item. */
  low: LowImage | null
  /** Its LOW look's answer while it waits for the HIGH one (look 2); null otherwise. */
  firstLook: FirstLook | null
}

/** What is kept of an item's LOW image (bulk_items.low_sent); `path` is where its bytes are. */
export interface LowImageInfo {
  sentMimeType: string
  sentBytes: number
  sentWidth: number
  sentHeight: number
  estimatedImageTokens: number
}
export interface LowImage extends LowImageInfo { path: string }

/** An ADAPTIVE item's LOW answer that was not good enough, kept for its HIGH look (bulk_items.first_look). */
export interface FirstLook extends BatchAnswer {
  /** Why it was not good enough (needsCloserLook). */
  reason: SecondLookReason
}

/** A chunk as the database keeps it: the GLOBAL_BATCH mode's persisted state (its status values are the mode's own). */
export interface BulkChunk {
  id: string
  jobId: string
  status: string
  inputFileId: string | null
  batchId: string | null
  outputFileId: string | null
  errorFileId: string | null
  lines: number
  bytes: number
  nextPollAt: number
  createdAt: number
  /** The look its lines ask: 1 (the first or only batch), 2 (ADAPTIVE's HIGH looks). */
  look: 1 | 2
}

export type ChunkChange = Partial<Pick<BulkChunksTable, 'status' | 'input_file_id' | 'batch_id' | 'output_file_id' |
  'error_file_id' | 'lines' | 'bytes' | 'next_poll_at'>>

/** The mode's persisted state: chunks, and which items each holds. */
export interface ChunkState {
  /** The job's chunks, oldest first. */
  list (): Promise<BulkChunk[]>
  /** Records a chunk and, in the same transaction, its items as SUBMITTED in it (only those still PREPARED, at its look). */
  create (chunk: { id: string, status: string, lines: number, bytes: number, look: 1 | 2 }, itemIds: readonly string[]): Promise<void>
  update (id: string, change: ChunkChange): Promise<void>
  /** A chunk's items not yet answered (SUBMITTED), in seq order, `size` after `afterSeq`. */
  items (chunkId: string, size: number, afterSeq?: number): Promise<PreparedItem[]>
  /** Marks items as sent again through the online path (online_retry = 1). */
  markOnlineRetry (itemIds: readonly string[]): Promise<void>
  /**
   * An ADAPTIVE item's LOW answer asks for a closer look: from SUBMITTED at look 1 in `chunkId` to PREPARED at look 2,
   * its first answer kept (once: false when it was not there any more).
   */
  secondLook (itemId: string, chunkId: string, firstLook: FirstLook): Promise<boolean>
}

export interface ModeContext {
  job: BulkJobSpec
  log: FastifyBaseLogger
  /** Aborted when this instance stops or the job is cancelled: return soon, nothing lost (the next run goes on). */
  signal: AbortSignal
  /** The job's items not yet answered with `status` (default PREPARED), in seq order, pages of at most `size` (≤ 500). */
  pages (size: number, status?: PreparedItem['status']): AsyncIterable<PreparedItem[]>
  /** The prepared image's bytes. */
  read (item: PreparedItem): Promise<Buffer>
  /** Deletes an answered item's prepared images (both, for an ADAPTIVE one): its record is written. */
  discard (item: PreparedItem): Promise<void>
  /** The identification call of an item (its id, the job's id, the job's question). */
  callOf (item: PreparedItem): PreparedCall
  /**
   * Announces an item's outcome obtained outside the online path (a Global Batch output or error line): its
   * identification is recorded under the item's id, and the item ends SUCCEEDED or FAILED with the record.
   */
  answered (item: PreparedItem, outcome: PreparedOutcome, durationMs?: number): Promise<void>
  /** Answers an item through the normal identification flow, in the background lane of vision slots. */
  identifyOnline (item: PreparedItem): Promise<void>
  /**
   * Resolves once every outcome announced so far is written (history.flushed). History's buffer drops the oldest
   * record when full: announce at most 500 outcomes, then await this, then the next 500.
   */
  flushed (): Promise<void>
  /** The mode's persisted state. */
  chunks: ChunkState
  /** Tells callers where the job is: SUBMITTED (handed upstream, waiting), RUNNING (being answered). */
  status (status: 'SUBMITTED' | 'RUNNING'): Promise<void>
}

/** What a run says: the job's items all have their outcome announced, or the job is to be run again at `nextRunAt`. */
export type ModeStep = { done: true } | { done: false, nextRunAt: number }

export interface BulkModeRunner {
  readonly name: BulkModeName
  /**
   * Works the job: called when it is RUNNING or SUBMITTED, again after every `{ done: false }` at `nextRunAt`, and
   * after a restart (resume from the items' statuses and the chunks). `done` once every item not yet answered has
   * had its outcome announced; the worker then waits for the records and completes the job.
   */
  run (ctx: ModeContext): Promise<ModeStep>
  /** cancelBulkJob: stops the upstream work (Azure's batch cancel); the worker ends the unanswered items CANCELLED. */
  cancel (ctx: ModeContext): Promise<void>
  /** The job ended (completed, failed, cancelled): delete what it holds upstream (uploaded files). */
  cleanUp (ctx: ModeContext): Promise<void>
}
