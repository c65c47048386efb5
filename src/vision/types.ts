// The one interface the rest of the service sees of vision. The resolver validates and delegates here;
// behind it, providers (provider.ts) and the failover between them (failover/failover.ts).
import type { AzureTokens } from '../azure/tokens.ts'
import type { ImageMimeType } from '../image/mime-types.ts'
import type { ImageDetail } from '../image/tokens.ts'
import type { DetectedVehicle, ImageQuality } from './answer-schema.ts'
import type { BackendSnapshot } from './failover/pool.ts'
import type { Metrics } from '../metrics/registry.ts'
import type { VisionBackend } from '../generated/schema-enums.ts'

export type { BackendSnapshot }

/**
 * A provider kind: the SDL's enum VisionBackend, generated from it (one list, in the SDL). A new provider
 * adds its value there (`extend enum VisionBackend` beside it), and `npm run codegen` brings it here.
 */
export type { VisionBackend }

export interface IdentifyRequest {
  /** The image bytes to send (already validated). */
  image: Buffer
  /** SHA-256 (hex) of `image` when the caller already has it (hashed once per request). */
  sha256?: string
  mimeType: ImageMimeType
  width: number
  height: number
  /** Sent to the model as the image's `detail`. */
  detail: ImageDetail
  /**
   * True when `image` is the upload and mimeType, width and height describe the image that would have been sent,
   * which was not encoded: only for a service with readsPixels false.
   */
  described?: boolean
  instructions: string
  /** BCP-47 tag of the answer's language. */
  language: string
  /** Aborted when the client goes away or the server gives up. */
  signal: AbortSignal
}

export interface TokenUsage {
  promptTokens: number
  completionTokens: number
  totalTokens: number
}

export interface IdentifyResult {
  /** The answer for a person, in the requested language. */
  answer: string
  /** What was detected, field by field (empty when the photo shows none; `answer` says why). */
  vehicles: DetectedVehicle[]
  /** Whether the image as sent let the model see enough (the answer's imageQuality): what ADAPTIVE reads for a second look. */
  imageQuality: ImageQuality
  /** The deployment or model that answered. */
  model: string
  usage: TokenUsage | null
  /** HTTP status of the upstream answer, for the log. */
  upstreamStatus: number | null
  /** Which of several deployments answered (AZURE_OPENAI_BACKENDS' name); null for the simulated backend. */
  backendName: string | null
}

/** How one call to one backend ended: ok, throttled (429), failing (5xx, connection), timed out, refused (400-class), or abandoned. */
export type AttemptOutcome = 'ok' | 'rate_limited' | 'error' | 'timeout' | 'refused' | 'aborted'

export type AttemptListener = (attempt: { backend: string, outcome: AttemptOutcome, seconds: number }) => void

export interface VisionStatus {
  backend: VisionBackend
  deployment: string | null
  ready: boolean
  /** Why not ready, for /health/ready. No secrets. */
  reason?: string
}

export interface VisionService {
  readonly backend: VisionBackend
  identify (request: IdentifyRequest): Promise<IdentifyResult>
  status (): VisionStatus
  /**
   * False for a service that reads no pixels (the simulated one: it answers from the sent image's size and hash):
   * ADAPTIVE's LOW look is then described to it rather than encoded (IdentifyRequest.described). Absent: true.
   */
  readonly readsPixels?: boolean
  /**
   * Who answers, as part of the result cache's key: 'simulated', or 'azure:' and every deployment's
   * endpoint/deployment, sorted. Absent on a hand-made service (tests): see cacheIdentityOf.
   */
  cacheIdentity? (): string
  /** Each provider's routing state, for operators (a failover's). */
  backends? (): BackendSnapshot[]
  /** Subscribes to every call to a provider (metrics); returns the function that unsubscribes. */
  onAttempt? (listener: AttemptListener): () => void
  /**
   * The managed identity's bearer token for Azure OpenAI, from the same cached provider the deployments use (a service
   * with a credential: Azure's). Bulk jobs' Global Batch calls (files, batches) use it.
   */
  accessToken? (): Promise<string>
  /** Token fetch counters of its scope (a service with a credential: Azure's). */
  tokenStats? (): { fetches: number, failures: number, timeouts: number }
  /** The credential and its per-scope tokens this service takes its token from; the app shares it (app.azureTokens). */
  readonly azureTokens?: AzureTokens
  /** Called once when the server listens (e.g. to fetch the first token). Must not throw. */
  warmUp? (): Promise<void>
  /** Registers the providers' own metrics; returns the function that stops measuring. */
  measure? (metrics: Metrics): () => void
  /** Called once when the app closes. */
  close? (): Promise<void>
}

/** The service's cache identity; a service without one (a test's hand-made service) is keyed by its kind. */
export function cacheIdentityOf (vision: Pick<VisionService, 'backend' | 'cacheIdentity'>): string {
  return vision.cacheIdentity?.() ?? vision.backend.toLowerCase()
}

export const DEFAULT_INSTRUCTIONS =
  'Identify the agricultural vehicle in this photo: its type (tractor, combine harvester, sprayer, ...), make and model. ' +
  'Say how sure you are, and what in the photo supports it.'
