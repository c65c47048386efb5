// The history database's tables as Kysely sees them. Times are epoch milliseconds (BIGINT) in both
// dialects, so that keyset pagination, ranges and day buckets are the same SQL on SQLite and PostgreSQL.
import type { Generated } from 'kysely'

export interface IdentificationsTable {
  id: string
  caller_id: string
  caller_kind: string
  created_at: number
  /** OK, or the error's code (UPSTREAM_UNAVAILABLE, BAD_USER_INPUT, ...). */
  outcome: string
  /** 1 when answered from the result cache. */
  cached: number
  language: string
  detail: string
  backend: string
  model: string | null
  /** The AZURE_OPENAI_BACKENDS name that answered (migration 0003). */
  backend_name: string | null
  answer: string | null
  /** The DetectedVehicle list as JSON. */
  vehicles: string | null
  /** The ImageInfo as JSON (null when the upload was refused before it was read). */
  image: string | null
  image_sha256: string | null
  prompt_tokens: number
  completion_tokens: number
  duration_ms: number
  /** What the result cache looks up: sha256 of the image sent and the question. */
  cache_key: string | null
  /** 1 once its thumbnail is stored. */
  has_thumbnail: number
  /** 1 once withdrawn: content erased, kept for usage until retention purges it. */
  deleted: number
  /** The bulk job it was part of (migration 0006); null for any other. */
  bulk_job_id: string | null
  /** 1 when answered by a Global Batch: its tokens are priced at the batch prices (migration 0007). */
  batch: number
}

/** One row per distinct category in an identification: the driving index of category filters. */
export interface IdentificationCategoriesTable {
  identification_id: string
  category: string
  caller_id: string
  created_at: number
}

/** One row per distinct make (lower-cased) in an identification: the driving index of make filters. */
export interface IdentificationMakesTable {
  identification_id: string
  make_key: string
  caller_id: string
  created_at: number
}

/** One row per distinct (category, lower-cased make) of an identification's vehicles: drives category + make filters. */
export interface IdentificationVehiclesTable {
  identification_id: string
  category: string
  make_key: string
  caller_id: string
  created_at: number
}

export interface ThumbnailsTable {
  identification_id: string
  jpeg: Uint8Array
  created_at: number
}

/** Usage by UTC day, caller and model, kept in step with every record so usage never scans history. */
export interface UsageDailyTable {
  day: number
  caller_id: string
  model: string
  identifications: number
  failed: number
  cached: number
  /** Every token, Global Batch's included. */
  prompt_tokens: number
  completion_tokens: number
  /** Of those, the tokens of identifications answered by a Global Batch (migration 0006). */
  batch_prompt_tokens: number
  batch_completion_tokens: number
}

export interface IdempotencyKeysTable {
  caller_id: string
  key: string
  /** sha256 of what the request asked (image, instructions, language, detail): a reuse with another is refused. */
  fingerprint: string
  /** running, then done (identification_id set) or failed (the code kept, the key released). */
  state: string
  identification_id: string | null
  created_at: number
  expires_at: number
}

/** History's tables (other features' tables live in the same database, typed by them). */
export type HistoryTables = {
  identifications: IdentificationsTable
  identification_categories: IdentificationCategoriesTable
  identification_makes: IdentificationMakesTable
  identification_vehicles: IdentificationVehiclesTable
  thumbnails: ThumbnailsTable
  usage_daily: UsageDailyTable
  idempotency_keys: IdempotencyKeysTable
}

export type { Generated }
