// What other parts of the app see of bulk jobs: `app.bulk` and the shapes it returns (types only).
import type { Caller } from '../callers/caller.ts'
import type { RequestedDetail } from '../image/tokens.ts'
import type { StoredFile } from '../graphql/upload.ts'
import type { BulkCounts, BulkItemRow } from './store.ts'
import type { BulkItemStatus, BulkJobStatus, BulkModeName } from './tables.ts'

export type { BulkCounts, BulkItemStatus, BulkJobStatus, BulkModeName }

export interface BulkJobView {
  id: string
  callerId: string
  status: BulkJobStatus
  mode: BulkModeName
  createdAt: Date
  completedAt: Date | null
  code: string | null
  promptTokens: number
  completionTokens: number
}

export interface NewBulkJob {
  /** The received archive, or the received photos (files on disk, taken by the job). */
  source: { archive: StoredFile } | { images: readonly StoredFile[] }
  instructions: string
  language: string
  detail: RequestedDetail
}

export interface BulkJobs {
  create (caller: Caller, job: NewBulkJob): Promise<BulkJobView>
  /** The caller's own unless `callerId` is null (ReadAll). */
  get (id: string, callerId: string | null): Promise<BulkJobView | undefined>
  list (callerId: string | null, first: number, after: string | null): Promise<{ rows: BulkJobView[], hasNextPage: boolean }>
  counts (id: string): Promise<BulkCounts>
  items (id: string, first: number, afterSeq: number | null, status: BulkItemStatus | null):
  Promise<{ rows: BulkItemRow[], hasNextPage: boolean }>
  /** Asks the job to stop; the caller's own unless `callerId` is null (Admin). Undefined when there is none. */
  cancel (id: string, callerId: string | null): Promise<BulkJobView | undefined>
  /** Prices for a job's estimated cost (batch prices in GLOBAL_BATCH mode); null when none are set. */
  priceOf (mode: BulkModeName): { inputPerMillion: number, outputPerMillion: number } | null
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Bulk jobs; null when HISTORY=off. */
    bulk: BulkJobs | null
  }
}
