// What one identification produced: the shape `Identification` has in the GraphQL schema.
import type { ImageDetail } from '../image/tokens.ts'
import type { TokenUsage, VisionBackend } from '../vision/types.ts'
import type { DetectedVehicle } from '../vision/answer-schema.ts'

export interface IdentificationInput {
  image: Buffer
  instructions: string
  language: string
  detail: ImageDetail
  signal: AbortSignal
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
}

// Checked against the SDL's `Identification` (src/graphql/generated/schema-types.ts): the resolver map is typed
// with the generated `Resolvers`, so `identifyVehicle` must return a value that fits it field by field.
export interface Identification {
  id: string
  answer: string
  vehicles: DetectedVehicle[]
  language: string
  backend: VisionBackend
  model: string
  image: SentImageInfo
  usage: TokenUsage | null
  durationMs: number
  createdAt: Date
}
