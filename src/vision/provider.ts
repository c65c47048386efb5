// One provider of answers behind the failover (src/vision/failover/): an Azure OpenAI deployment, the
// simulated backend, the next model provider. The failover picks, holds and breaks providers; a provider
// only calls its model and says what a failure means. Adding a provider is a new file, not an edit of the loop.
import type { Metrics } from '../metrics/registry.ts'
import type { PoolMember } from './failover/pool.ts'
import type { AttemptOutcome, IdentifyRequest, IdentifyResult, VisionBackend } from './types.ts'

/** One attempt on one provider, as the failover hands it over. */
export interface Attempt {
  /** The caller's signal and the whole call's deadline together. */
  signal: AbortSignal
  /** This attempt's own time (VISION_ATTEMPT_TIMEOUT_MS, or what is left of the call's). */
  timeoutMs: number
  /** The provider was throttled (e.g. a 429 seen by the SDK's own retries): keep requests away for `ms` (undefined: the default hold). */
  hold (ms: number | undefined): void
}

/** What a failed attempt says about its provider, and whether the request may go to another one. */
export interface Classification {
  outcome: AttemptOutcome
  /** Another provider may be asked. */
  tryNext: boolean
  /** What the caller hears if this is the last word (the attempt's own timeout when `outcome` is 'timeout' and `tryNext`). */
  error: unknown
  /** For 'rate_limited': how long the provider asked to be left alone. */
  retryAfterMs?: number
  /** The provider answered (a refusal, an unusable answer): its circuit breaker counts a success, not a failure. */
  answered?: boolean
}

export interface ClassifyContext {
  /** The whole call's deadline (VISION_TIMEOUT_MS) passed. */
  timedOut: boolean
  /** The caller went away. */
  clientGone: boolean
  /** The whole call's time. */
  timeoutMs: number
  /** This attempt's time. */
  attemptMs: number
  /** The only provider of its service (messages name the deployment rather than the provider). */
  alone: boolean
}

export interface VisionProvider extends PoolMember {
  /** The SDL's VisionBackend value (AZURE_OPENAI, SIMULATED, ...). */
  readonly kind: VisionBackend
  /** Shown in `Identification.backendName`, metrics and logs (AZURE_OPENAI_BACKENDS' name). */
  readonly name: string
  /** The model deployment it calls; null when there is none (simulated). */
  readonly deployment: string | null
  /** The answer, or a throw that `classify` understands. */
  identify (request: IdentifyRequest, attempt: Attempt): Promise<Omit<IdentifyResult, 'backendName'>>
  classify (error: unknown, context: ClassifyContext): Classification
  /** Whether it can take requests at all (a credential it lacks); its holds and breaker are the failover's. No secrets in `reason`. */
  status (): { ready: boolean, reason?: string }
  /** Who answers, as the result cache's key part: the same for every provider that serves the same model the same way. */
  cacheIdentity (): string
  /**
   * Optional lifecycle and metrics, as plain functions (closures: called unbound). Providers sharing a resource
   * (one token for every Azure deployment) share the function itself: the service calls each distinct one once.
   */
  warmUp? (): Promise<void>
  close? (): Promise<void>
  /** Registers its own metrics; returns the function that stops measuring. */
  measure? (metrics: Metrics): () => void
}
