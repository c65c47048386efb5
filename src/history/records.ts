// An identification as history keeps it, and the mapping between that and the rows it is stored in.
import type { DetectedVehicle } from '../vision/answer-schema.ts'
import { detailName, type Identification, type SentImageInfo } from '../identification/types.ts'
import type { VisionBackend } from '../vision/types.ts'
import type { IdentificationsTable } from './tables.ts'
import { storableJsonReplacer } from '../storable-text.ts'

export interface HistoryRecord {
  id: string
  callerId: string
  callerKind: string
  createdAt: Date
  /** 'OK' or the failure's code. */
  outcome: string
  cached: boolean
  language: string
  detail: string
  backend: VisionBackend
  model: string | null
  /** Which of several Azure deployments answered (null: simulated, failed before one answered). */
  backendName: string | null
  answer: string | null
  vehicles: DetectedVehicle[]
  image: Partial<SentImageInfo> | null
  promptTokens: number
  completionTokens: number
  durationMs: number
  cacheKey: string | null
  /** The bulk job it was part of; null (or absent) for any other. */
  bulkJobId?: string | null
  /** Answered by a Global Batch (its tokens priced at the batch prices in usage); absent: false. */
  batch?: boolean
}

export const OK = 'OK'

export function toRow (record: HistoryRecord): IdentificationsTable {
  return {
    id: record.id,
    caller_id: record.callerId,
    caller_kind: record.callerKind,
    created_at: record.createdAt.getTime(),
    outcome: record.outcome,
    cached: record.cached ? 1 : 0,
    language: record.language,
    detail: record.detail,
    backend: record.backend,
    model: record.model,
    backend_name: record.backendName,
    answer: record.answer,
    // JSON in text columns: its strings made storable like any other (a \u0000 escape would come back as U+0000).
    vehicles: record.outcome === OK ? JSON.stringify(record.vehicles, storableJsonReplacer) : null,
    image: record.image === null ? null : JSON.stringify(record.image, storableJsonReplacer),
    image_sha256: record.image?.sha256 ?? null,
    prompt_tokens: record.promptTokens,
    completion_tokens: record.completionTokens,
    duration_ms: Math.round(record.durationMs),
    cache_key: record.cacheKey,
    has_thumbnail: 0,
    deleted: 0,
    bulk_job_id: record.bulkJobId ?? null,
    batch: record.batch === true ? 1 : 0
  }
}

/** A stored successful identification, as the GraphQL API shows it. */
export interface StoredIdentification extends Identification {
  hasThumbnail: boolean
}

export function fromRow (row: IdentificationsTable): StoredIdentification {
  const usage = row.backend === 'SIMULATED' || row.cached === 1
    ? null
    : { promptTokens: row.prompt_tokens, completionTokens: row.completion_tokens, totalTokens: row.prompt_tokens + row.completion_tokens }
  const image = JSON.parse(row.image ?? '{}') as Partial<SentImageInfo>
  // Rows written before ADAPTIVE have neither: the answer came from the one detail asked for, in one look.
  const detailUsed = image.detailUsed ?? detailName(row.detail)
  const looks = image.looks ?? 1
  return {
    id: row.id,
    callerId: row.caller_id,
    answer: row.answer ?? '',
    vehicles: row.vehicles === null ? [] : JSON.parse(row.vehicles) as DetectedVehicle[],
    language: row.language,
    backend: row.backend as VisionBackend,
    model: row.model ?? '',
    backendName: row.backend_name,
    bulkJobId: row.bulk_job_id ?? null,
    image: { ...image, detailUsed, looks } as SentImageInfo,
    detailUsed,
    looks,
    usage,
    cached: row.cached === 1,
    durationMs: row.duration_ms,
    createdAt: new Date(row.created_at),
    hasThumbnail: row.has_thumbnail === 1
  }
}

/** Distinct categories, lower-cased makes and (category, make) pairs: the rows that drive the filters. */
export function filterKeys (vehicles: readonly DetectedVehicle[]): {
  categories: string[], makes: string[], pairs: Array<{ category: string, make: string }>
} {
  const categories = new Set(vehicles.map(vehicle => vehicle.category))
  const makes = new Set(vehicles.flatMap(vehicle => vehicle.make === null ? [] : [makeKey(vehicle.make)]))
  const pairs = new Map<string, { category: string, make: string }>()
  for (const vehicle of vehicles) {
    if (vehicle.make === null) continue
    const make = makeKey(vehicle.make)
    pairs.set(`${vehicle.category}\n${make}`, { category: vehicle.category, make })
  }
  return { categories: [...categories], makes: [...makes], pairs: [...pairs.values()] }
}

/** How makes compare in filters: case and surrounding spaces do not matter (John Deere = john deere). */
export function makeKey (make: string): string {
  return make.trim().toLowerCase().slice(0, 255)
}
