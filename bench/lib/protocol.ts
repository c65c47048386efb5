// IPC messages between bench/run.ts and its children.

export type FakeMessage = { type: 'latency', ms: number } | { type: 'stats' } | { type: 'stop' }
export type FakeReply =
  | { type: 'listening', origin: string, env: Record<string, string> }
  | { type: 'ok' }
  /** byDetail: chat calls by the `detail` of their image (kept only with BENCH_FAKE_ANSWERS=adaptive). */
  | { type: 'stats', tokenRequests: number, chats: number, maxInFlightChats: number, byDetail: Record<string, number> }

export interface LoadJob {
  url: string
  /** The image file to upload. */
  file: string
  connections: number
  /** Seconds; or `amount` requests in all. */
  duration?: number
  amount?: number
  /** Per-request timeout, seconds. */
  timeout: number
  /** What a correct answer carries: the image's sha256, and how the answer starts. */
  expectSha256: string
  expectAnswerPrefix: string
  /** Sent besides the multipart ones (e.g. x-api-key). */
  headers?: Record<string, string>
}

export interface LoadResult {
  /** Completed 2xx responses. */
  requests: number
  durationSec: number
  rps: number
  min: number
  mean: number
  p50: number
  p99: number
  max: number
  non2xx: number
  errors: number
  timeouts: number
  /** 2xx answers without the expected data (or with GraphQL errors). */
  mismatches: number
  /** Responses by HTTP status. */
  statusCodes: Record<string, number>
  firstMismatch: string | undefined
}

export type LoadMessage = { type: 'run', id: number, job: LoadJob } | { type: 'stop' }
export type LoadReply = { type: 'ready' } | { type: 'result', id: number, result: LoadResult } | { type: 'error', id: number, message: string }

export interface PipelineRun {
  detail: string
  /** The input file's name (bench/bulk.ts hands several). */
  input?: string
  runs: number
  p50: number
  p99: number
  /** The process's CPU time (every thread) per run, mean. */
  cpuMs: number
  inputBytes: number
  outputBytes: number
  /** Upright (EXIF orientation applied) sizes. */
  inputWidth: number
  inputHeight: number
  outputWidth: number
  outputHeight: number
}

export type PipelineReply =
  | { type: 'result', runs: PipelineRun[] }
  | { type: 'error', message: string }

export interface LatencyStats { runs: number, p50: number, p95: number, p99: number, max: number }
export interface HistoryQueryResult extends LatencyStats { name: string, kind: 'list' | 'usage', rowsPerRun: number }
export interface HistoryPlan { name: string, queries: Array<{ sql: string, plan: string }> }
export interface HistoryDbResult {
  dialect: 'sqlite' | 'postgres'
  /** How the database was set up and measured. */
  setup: string
  loadSec: number
  /** File size (SQLite) or database size (PostgreSQL) after the load, MiB. */
  fileMiB: number
  counts: { identifications: number, categories: number, makes: number, vehicles: number, usageDaily: number }
  /**
   * Writes: the stats are per record (a batch's time ÷ its size); perBatch: the whole insertMany call.
   * target: the row the write target (p99) is judged on.
   */
  inserts: Array<LatencyStats & { label: string, batch: number, perBatch: LatencyStats, target?: boolean }>
  queries: HistoryQueryResult[]
  plans: HistoryPlan[]
}
export type HistoryReply =
  | { type: 'result', records: number, runs: number, databases: HistoryDbResult[] }
  | { type: 'error', message: string }
