// What one identification produced: the shape `Identification` has in the GraphQL schema.
import type { ImageDetail, RequestedDetail, UsedDetail } from '../image/tokens.ts'
import type { TokenUsage, VisionBackend } from '../vision/types.ts'
import type { DetectedVehicle } from '../vision/answer-schema.ts'
import type { Caller } from '../callers/caller.ts'

/**
 * Answers identical questions from earlier answers (the history's result cache). The flow asks it
 * before the model; a lookup that fails is a miss, never a failed identification.
 */
export interface AnswerCache {
  /** The key of a question: the image as sent, the instructions, language, detail (and the deployment, which the cache knows). */
  keyFor (question: { sentSha256: string, instructions: string, language: string, detail: string }): string
  lookup (key: string, caller: Caller): Promise<CachedAnswer | undefined>
}

export interface CachedAnswer {
  answer: string
  vehicles: DetectedVehicle[]
  model: string
  backendName: string | null
}

export interface IdentificationInput {
  image: Buffer
  instructions: string
  language: string
  detail: RequestedDetail
  signal: AbortSignal
  /**
   * When `image` is already prepared (a bulk item: upright, stripped, downscaled), the photo it came from: what
   * `Identification.image` reports of the upload (its sha256, type, size, dimensions).
   */
  original?: UploadFacts
}

/** What an identification reports of the upload itself. */
export interface UploadFacts {
  sha256: string
  mimeType: string
  bytes: number
  width: number
  height: number
}

export interface SentImageInfo {
  sha256: string
  mimeType: string
  bytes: number
  width: number
  height: number
  sentMimeType: string
  sentBytes: number
  sentWidth: number
  sentHeight: number
  estimatedImageTokens: number
  /** What the answer came from (LOW or HIGH for ADAPTIVE); kept here so history's record has it (no column). */
  detailUsed: UsedDetail
  /** 1, or 2 when an ADAPTIVE identification took a second, closer look. */
  looks: number
}

// Checked against the SDL's `Identification` (src/graphql/generated/schema-types.ts): the resolver map is typed
// with the generated `Resolvers`, so `identifyVehicle` must return a value that fits it field by field.
export interface Identification {
  id: string
  /** Who asked: the caller's stable id (Entra oid/appid, API key id, anonymous). */
  callerId: string
  answer: string
  vehicles: DetectedVehicle[]
  language: string
  backend: VisionBackend
  model: string
  /** Which of several Azure deployments answered (for a cached answer: the one that answered first); null when simulated. */
  backendName: string | null
  /** The bulk job it was part of; null for any other. */
  bulkJobId: string | null
  image: SentImageInfo
  /** What the answer came from: the detail sent; LOW or HIGH for ADAPTIVE. */
  detailUsed: UsedDetail
  /** How many times the model was asked to look: 1, or 2 (ADAPTIVE's second look). */
  looks: number
  usage: TokenUsage | null
  /** True when answered from the result cache (history) rather than the model. */
  cached: boolean
  durationMs: number
  createdAt: Date
}

const DETAIL_NAMES: Record<ImageDetail, UsedDetail> = { auto: 'AUTO', high: 'HIGH', low: 'LOW' }

/** A detail sent to the model as the API names it ('low' → LOW); an unknown value (an old or foreign row) is AUTO. */
export function detailName (detail: string): UsedDetail {
  return Object.hasOwn(DETAIL_NAMES, detail) ? DETAIL_NAMES[detail as ImageDetail] : 'AUTO'
}
