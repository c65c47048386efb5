// The bulk job tables as Kysely sees them (in the app's database, beside history's). Created by
// migrations/0005-bulk-jobs.ts. Times are epoch milliseconds, as in history.

export type BulkJobStatus = 'RECEIVED' | 'PREPARING' | 'SUBMITTED' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED'
export type BulkItemStatus = 'PENDING' | 'PREPARED' | 'SUBMITTED' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED'
export type BulkModeName = 'GLOBAL_BATCH' | 'ONLINE'

export const FINISHED_JOB: readonly BulkJobStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED']
export const FINISHED_ITEM: readonly BulkItemStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED']

export interface BulkJobsTable {
  id: string
  caller_id: string
  caller_kind: string
  status: BulkJobStatus
  mode: BulkModeName
  /** The requested detail as the flow names it (auto, high, low, adaptive). */
  detail: string
  language: string
  instructions: string
  /** The received archive (or the folder of received images), under DATA_DIR/bulk; null once deleted. */
  archive_path: string | null
  total: number
  /** Tokens of the job's answered items (kept by the record hook). */
  prompt_tokens: number
  completion_tokens: number
  /** 1 once cancelBulkJob asked: the worker stops and ends the rest CANCELLED. */
  cancel_requested: number
  /** Why the whole job failed (a refused archive), else null. */
  error_code: string | null
  /** Worked by one instance until then (a lease, like the webhook outbox). */
  lease_until: number | null
  leased_by: string | null
  /** Not worked before then (a GLOBAL_BATCH job between polls). */
  next_run_at: number
  created_at: number
  updated_at: number
  completed_at: number | null
}

export interface BulkItemsTable {
  /** The item's id = its identification's id = its Global Batch custom_id. */
  id: string
  job_id: string
  /** Its place in the job (archive order), for items' pagination. */
  seq: number
  /** Its path in the archive, or the uploaded file's place (`images[3]`). */
  name: string
  /** Its entry in the archive (openArchive's index), or its file's index among `images`. */
  entry_index: number
  status: BulkItemStatus
  /** Why it failed (the code identifyVehicle gives), else null. */
  code: string | null
  /** The SentImageInfo of its prepared image (JSON), once PREPARED. */
  sent: string | null
  /** The Global Batch chunk it was submitted in. */
  chunk_id: string | null
  /** 1 once sent again through the online path after its batch line failed. */
  online_retry: number
  /** ADAPTIVE in GLOBAL_BATCH (migration 0008): the look it waits for, 1 (LOW) or 2 (HIGH); 1 for every other item. */
  look: number
  /** Its LOW image's facts (JSON, LowImageInfo) when it was prepared for two looks; null otherwise. */
  low_sent: string | null
  /** Its LOW look's answer (JSON, FirstLook) once that asked for a closer look; null otherwise. */
  first_look: string | null
  lease_until: number | null
  leased_by: string | null
}

/** A Global Batch chunk: one JSONL file, one batch. Its columns beyond these are the GLOBAL_BATCH mode's. */
export interface BulkChunksTable {
  id: string
  job_id: string
  /** The mode's own (e.g. WRITTEN, UPLOADED, SUBMITTED, READ, DONE). */
  status: string
  input_file_id: string | null
  batch_id: string | null
  output_file_id: string | null
  error_file_id: string | null
  lines: number
  bytes: number
  next_poll_at: number
  lease_until: number | null
  leased_by: string | null
  created_at: number
  /** The look its lines ask (migration 0008): 1 (a job's first or only batch), 2 (ADAPTIVE's HIGH looks). */
  look: number
}

/** A type, not an interface: `Kysely.withTables<T>()` wants one. */
export type BulkTables = {
  bulk_jobs: BulkJobsTable
  bulk_items: BulkItemsTable
  bulk_chunks: BulkChunksTable
}
