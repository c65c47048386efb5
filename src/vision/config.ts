// The vision backend and what it is asked: which backend, the answer's language, the call's time and token budget.
import { Type, type Static } from '@sinclair/typebox'
import { StringEnum } from '../config-support.ts'
import { readAzureConfig, type AzureConfig, type AzureEnv } from '../azure/config.ts'
import { LANGUAGE_TAG } from './language.ts'

export const VISION_BACKENDS = ['azure', 'simulated'] as const
export type VisionBackendName = typeof VISION_BACKENDS[number]

export const VisionEnv = Type.Object({
  /** Unset: azure when AZURE_OPENAI_ENDPOINT (or GPT4V_ENDPOINT) or AZURE_OPENAI_BACKENDS(_FILE) is set, else simulated. */
  VISION_BACKEND: Type.Optional(StringEnum(VISION_BACKENDS)),
  VISION_LANGUAGE: Type.String({ pattern: LANGUAGE_TAG.source, default: 'ru' }),
  VISION_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 60_000 }),
  VISION_MAX_TOKENS: Type.Integer({ minimum: 16, maximum: 16_384, default: 800 }),
  /** One deployment's attempt; unset: VISION_TIMEOUT_MS with one deployment, half of it with several (time left to fail over). */
  VISION_ATTEMPT_TIMEOUT_MS: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
  /** Consecutive failures (5xx, connection failures, timeouts) that open a deployment's circuit breaker. */
  VISION_BREAKER_FAILURES: Type.Integer({ minimum: 1, maximum: 100, default: 3 }),
  /** How long an open breaker keeps requests away before letting one probe through. */
  VISION_BREAKER_COOLDOWN_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 })
})
export type VisionEnv = Static<typeof VisionEnv>

export interface VisionConfig {
  backend: VisionBackendName
  language: string
  timeoutMs: number
  /** Null: the default for the number of deployments (see VisionEnv). */
  attemptTimeoutMs: number | null
  maxTokens: number
  breakerFailures: number
  breakerCoolDownMs: number
}

/** The vision slice, and Azure's (null unless the backend is 'azure'), which is read with it (VISION_BACKEND decides). */
export function readVisionConfig (raw: VisionEnv & AzureEnv): { vision: VisionConfig, azure: AzureConfig | null } {
  const configured = raw.AZURE_OPENAI_ENDPOINT ?? raw.AZURE_OPENAI_BACKENDS ?? raw.AZURE_OPENAI_BACKENDS_FILE
  const backend = raw.VISION_BACKEND ?? (configured !== undefined ? 'azure' : 'simulated')
  const azure = readAzureConfig(raw, backend === 'azure')
  const vision = {
    backend,
    language: raw.VISION_LANGUAGE,
    timeoutMs: raw.VISION_TIMEOUT_MS,
    attemptTimeoutMs: raw.VISION_ATTEMPT_TIMEOUT_MS ?? null,
    maxTokens: raw.VISION_MAX_TOKENS,
    breakerFailures: raw.VISION_BREAKER_FAILURES,
    breakerCoolDownMs: raw.VISION_BREAKER_COOLDOWN_MS
  }
  return { vision, azure }
}
