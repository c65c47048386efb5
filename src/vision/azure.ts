// The Azure OpenAI vision service: the Azure providers (providers/azure-openai.ts) behind the failover
// (failover/failover.ts), one deployment or several, one credential and one cached token for all.
import type { FastifyBaseLogger } from 'fastify'
import type { AzureConfig } from '../azure/config.ts'
import type { CachedTokenProvider } from '../azure/token-provider.ts'
import type { AzureTokens } from '../azure/tokens.ts'
import { createFailover } from './failover/failover.ts'
import { createAzureProviders } from './providers/azure-openai.ts'
import type { VisionService } from './types.ts'

export interface AzureVisionOptions {
  azure: AzureConfig
  tokens: CachedTokenProvider
  /** The credential `tokens` comes from, shared with the app (app.azureTokens). */
  azureTokens?: AzureTokens
  /** Whole call, retries and failover included (VISION_TIMEOUT_MS). */
  timeoutMs: number
  /** One backend's attempt (VISION_ATTEMPT_TIMEOUT_MS); default: timeoutMs with one backend, half of it with several. */
  attemptTimeoutMs?: number
  maxTokens: number
  /** SDK retries on one backend (408/409/429/5xx/connection errors); default 2 with one backend, 0 with several (failover retries). */
  maxRetries?: number
  /** Consecutive failures that open a backend's circuit breaker (VISION_BREAKER_FAILURES). */
  breakerFailures?: number
  /** How long an open breaker keeps requests away before one probe (VISION_BREAKER_COOLDOWN_MS). */
  breakerCoolDownMs?: number
  /** For oddities in Azure's answers (a malformed usage object) and failovers. */
  log?: FastifyBaseLogger
  now?: () => number
  random?: () => number
}

export function createAzureVision (options: AzureVisionOptions): VisionService {
  const { azure, tokens, log } = options
  const { maxTokens, maxRetries } = options
  const providers = createAzureProviders({ backends: azure.backends, tokens, maxTokens, maxRetries, log })
  const failover = createFailover(providers, {
    timeoutMs: options.timeoutMs,
    attemptTimeoutMs: options.attemptTimeoutMs,
    breaker: { failureThreshold: options.breakerFailures ?? 3, coolDownMs: options.breakerCoolDownMs ?? 10_000 },
    label: 'Azure OpenAI',
    // The result cache's key part, byte for byte what it was: 'azure:' and every endpoint/deployment, sorted.
    cacheNamespace: 'azure',
    log,
    now: options.now,
    random: options.random
  })
  return {
    ...failover,
    tokenStats: () => ({ ...tokens.stats }),
    accessToken: tokens.getToken,
    ...(options.azureTokens ? { azureTokens: options.azureTokens } : {})
  }
}
