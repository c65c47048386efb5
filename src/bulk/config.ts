// Bulk jobs: how large an archive may be received, how many photos a job holds and how they may be packed, how
// much of the service a job may use (preparation, the background lane of vision slots), how many jobs a caller may
// run, and Azure OpenAI's Global Batch (its deployment, endpoint, polling and prices).
import path from 'node:path'
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError, requireHttps } from '../config-support.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

export const BulkEnv = Type.Object({
  /** Largest ZIP archive received, in bytes (refused as it crosses the limit, nothing more written). */
  BULK_MAX_ARCHIVE_BYTES: Type.Integer({ minimum: 1 * MiB, maximum: 64 * GiB, default: 2 * GiB }),
  /** Photos (archive entries that are not skipped) per job. */
  BULK_MAX_ITEMS: Type.Integer({ minimum: 1, maximum: 100_000, default: 10_000 }),
  /** Sum of the entries' declared sizes; 0: 4 × BULK_MAX_ARCHIVE_BYTES. */
  BULK_MAX_EXPANDED_BYTES: Type.Integer({ minimum: 0, maximum: 256 * GiB, default: 0 }),
  /** An entry expanding to more than this many times its compressed size is a FAILED item (zip bomb). */
  BULK_MAX_COMPRESSION_RATIO: Type.Integer({ minimum: 1, maximum: 10_000, default: 20 }),
  /** Archive bytes being received at once by this instance, every caller together. */
  BULK_MAX_RECEIVING_BYTES: Type.Integer({ minimum: 1 * MiB, maximum: 1024 * GiB, default: 8 * GiB }),
  /** Free space DATA_DIR must keep beyond an archive being received (else OVERLOADED). */
  BULK_MIN_FREE_BYTES: Type.Integer({ minimum: 0, maximum: 1024 * GiB, default: 1 * GiB }),
  /** Vision slots of the background lane (ONLINE items), beside VISION_MAX_CONCURRENCY; 0: a quarter of it (at least 1). */
  BULK_MAX_CONCURRENCY: Type.Integer({ minimum: 0, maximum: 1024, default: 0 }),
  /** Photos prepared (inspected, stripped, downscaled) at once per instance. */
  BULK_PREPARE_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
  /** Seconds between two looks at a Global Batch job (Azure asks for no more often than 60). */
  BULK_POLL_INTERVAL_S: Type.Integer({ minimum: 1, maximum: 3600, default: 60 }),
  /** Jobs a caller may have not yet finished (receiving included); one more is refused with RATE_LIMITED. */
  BULK_MAX_ACTIVE_JOBS_PER_CALLER: Type.Integer({ minimum: 1, maximum: 1000, default: 2 }),
  /** A Global Batch (or Data Zone Batch) deployment: set, and with VISION_BACKEND=azure, jobs run in GLOBAL_BATCH mode. */
  AZURE_OPENAI_BATCH_DEPLOYMENT: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' })),
  /** The resource holding it (https); default: the first configured Azure endpoint. */
  AZURE_OPENAI_BATCH_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 300 })),
  /** Prices of Global Batch tokens per million; default half of VISION_PRICE_*_PER_MTOK. */
  VISION_BATCH_PRICE_INPUT_PER_MTOK: Type.Optional(Type.Number({ minimum: 0 })),
  VISION_BATCH_PRICE_OUTPUT_PER_MTOK: Type.Optional(Type.Number({ minimum: 0 }))
})
export type BulkEnv = Static<typeof BulkEnv>

export type BulkMode = 'GLOBAL_BATCH' | 'ONLINE'

export interface GlobalBatchConfig {
  deployment: string
  /** The Azure OpenAI resource's endpoint (https://…), no trailing slash. */
  endpoint: string
  /** The API version of that endpoint ('v1' or a dated one). */
  apiVersion: string
}

export interface BulkConfig {
  /** DATA_DIR/bulk: archives being received and jobs' files (received photos, prepared images). */
  dir: string
  maxArchiveBytes: number
  maxItems: number
  maxExpandedBytes: number
  maxCompressionRatio: number
  maxReceivingBytes: number
  minFreeBytes: number
  /** Background-lane slots (never 0). */
  maxConcurrency: number
  prepareConcurrency: number
  pollIntervalMs: number
  maxActiveJobsPerCaller: number
  /** Set when jobs run in GLOBAL_BATCH mode (a batch deployment and the Azure backend); null: ONLINE. */
  globalBatch: GlobalBatchConfig | null
  /** Prices of Global Batch tokens; null when no prices are set. */
  batchPrices: { inputPerMillion: number, outputPerMillion: number } | null
}

export interface BulkConfigContext {
  /** DATA_DIR. */
  dataDir: string
  /** VISION_MAX_CONCURRENCY: the background lane defaults to a quarter of it. */
  visionMaxConcurrency: number
  /** VISION_PRICE_*_PER_MTOK (null when unset): batch prices default to half. */
  prices: { inputPerMillion: number, outputPerMillion: number } | null
  /** The first configured Azure deployment's endpoint and API version; null unless the vision backend is Azure. */
  azure: { endpoint: string, apiVersion: string } | null
}

export function readBulkConfig (raw: BulkEnv, context: BulkConfigContext): BulkConfig {
  requireHttps('AZURE_OPENAI_BATCH_ENDPOINT', raw.AZURE_OPENAI_BATCH_ENDPOINT)
  const input = raw.VISION_BATCH_PRICE_INPUT_PER_MTOK
  const output = raw.VISION_BATCH_PRICE_OUTPUT_PER_MTOK
  if ((input === undefined) !== (output === undefined)) {
    throw new ConfigError('invalid configuration: set both VISION_BATCH_PRICE_INPUT_PER_MTOK and VISION_BATCH_PRICE_OUTPUT_PER_MTOK, or neither')
  }
  const batchPrices = input !== undefined && output !== undefined
    ? { inputPerMillion: input, outputPerMillion: output }
    : context.prices === null
      ? null
      : { inputPerMillion: context.prices.inputPerMillion / 2, outputPerMillion: context.prices.outputPerMillion / 2 }
  const deployment = raw.AZURE_OPENAI_BATCH_DEPLOYMENT
  const globalBatch = deployment === undefined || context.azure === null
    ? null
    : {
        deployment,
        endpoint: (raw.AZURE_OPENAI_BATCH_ENDPOINT ?? context.azure.endpoint).replace(/\/+$/, ''),
        apiVersion: context.azure.apiVersion
      }
  return {
    dir: path.resolve(context.dataDir, 'bulk'),
    maxArchiveBytes: raw.BULK_MAX_ARCHIVE_BYTES,
    maxItems: raw.BULK_MAX_ITEMS,
    maxExpandedBytes: raw.BULK_MAX_EXPANDED_BYTES === 0 ? 4 * raw.BULK_MAX_ARCHIVE_BYTES : raw.BULK_MAX_EXPANDED_BYTES,
    maxCompressionRatio: raw.BULK_MAX_COMPRESSION_RATIO,
    maxReceivingBytes: raw.BULK_MAX_RECEIVING_BYTES,
    minFreeBytes: raw.BULK_MIN_FREE_BYTES,
    maxConcurrency: raw.BULK_MAX_CONCURRENCY === 0 ? Math.max(1, Math.floor(context.visionMaxConcurrency / 4)) : raw.BULK_MAX_CONCURRENCY,
    prepareConcurrency: raw.BULK_PREPARE_CONCURRENCY,
    pollIntervalMs: raw.BULK_POLL_INTERVAL_S * 1000,
    maxActiveJobsPerCaller: raw.BULK_MAX_ACTIVE_JOBS_PER_CALLER,
    globalBatch,
    batchPrices
  }
}

/** The mode a job created now runs in. */
export function modeOf (config: Pick<BulkConfig, 'globalBatch'>): BulkMode {
  return config.globalBatch === null ? 'ONLINE' : 'GLOBAL_BATCH'
}
