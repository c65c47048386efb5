// One credential, one cached token per scope: Azure OpenAI, PostgreSQL and Redis each take a token for their own
// scope from the process's one managed identity. Each scope has its own CachedTokenProvider (token-provider.ts):
// its own single-flight fetch, timeout, retry delay and refresh ahead, so a hung fetch for one scope blocks
// neither the others nor more than one socket; the credential (and MSAL's cache behind it) is shared.
import type { TokenCredential } from '@azure/identity'
import type { FastifyBaseLogger } from 'fastify'
import { CachedTokenProvider, type TokenProviderOptions, type TokenStats } from './token-provider.ts'

// The seam in one import for the parts above the kernel; the kernel (database, redis) imports these two directly.
export { jitter, refreshMargin } from './margins.ts'
export type { IssuedToken, TokenRequest, TokenSource } from './token-source.ts'

export interface AzureTokensOptions {
  credential: TokenCredential
  /** Shown in logs and errors, e.g. "DefaultAzureCredential (AZURE_TOKEN_CREDENTIALS=prod)". */
  credentialName: string
  /** One fetch's timeout, every scope (AZURE_TOKEN_TIMEOUT_MS). */
  timeoutMs: number
  log: FastifyBaseLogger
  /** The providers' tuning (tests): refresh ahead, minimum validity, retry delay, clock. */
  tuning?: Pick<TokenProviderOptions, 'refreshAheadMs' | 'minValidityMs' | 'retryDelayMs' | 'abandonAfterMs' | 'now'>
}

export class AzureTokens {
  readonly credentialName: string
  readonly #options: AzureTokensOptions
  readonly #providers = new Map<string, CachedTokenProvider>()
  readonly #users = new Map<string, Set<string>>()

  constructor (options: AzureTokensOptions) {
    this.#options = options
    this.credentialName = options.credentialName
  }

  /**
   * The cached provider of this scope, made at the first call and the same one afterwards. `usedBy` names the part
   * that needs it ('vision', 'database', 'redis'), for readiness: "database: no Microsoft Entra ID token ...".
   */
  forScope (scope: string, usedBy?: string): CachedTokenProvider {
    if (usedBy !== undefined) {
      const users = this.#users.get(scope) ?? new Set<string>()
      users.add(usedBy)
      this.#users.set(scope, users)
    }
    let provider = this.#providers.get(scope)
    if (provider === undefined) {
      const { credential, credentialName, timeoutMs, log, tuning } = this.#options
      provider = new CachedTokenProvider({ ...tuning, credential, credentialName, scope, timeoutMs, log: log.child({ scope }) })
      this.#providers.set(scope, provider)
    }
    return provider
  }

  /** The scopes asked for so far, in order. */
  scopes (): string[] {
    return [...this.#providers.keys()]
  }

  /** Each scope's counters. */
  statsByScope (): Array<{ scope: string, stats: TokenStats }> {
    return [...this.#providers].map(([scope, provider]) => ({ scope, stats: { ...provider.stats } }))
  }

  /** The counters summed over every scope (agrivision_token_fetches_total and its failures). */
  totals (): TokenStats {
    const total: TokenStats = { fetches: 0, failures: 0, timeouts: 0, abandoned: 0 }
    for (const provider of this.#providers.values()) {
      total.fetches += provider.stats.fetches
      total.failures += provider.stats.failures
      total.timeouts += provider.stats.timeouts
      total.abandoned += provider.stats.abandoned
    }
    return total
  }

  /** Scopes without a usable token whose last fetch failed, who uses them, and why (no secret in the reason). */
  failing (): Array<{ scope: string, usedBy: string[], reason: string }> {
    const failing: Array<{ scope: string, usedBy: string[], reason: string }> = []
    for (const [scope, provider] of this.#providers) {
      const reason = provider.failure()
      if (reason !== undefined) failing.push({ scope, usedBy: [...this.#users.get(scope) ?? []], reason })
    }
    return failing
  }
}
