// A cached bearer-token provider: one per process, shared by every request.
//
// Why not @azure/identity's getBearerTokenProvider? In 4.14 its background refresh is not awaited
// (a refresh failing until expiry crashes the process with an unhandled rejection) and managed-identity
// requests have no timeout and ignore abort signals (one hung fetch blocks every caller forever).
// See ../shared/docs/azure-identity-openai.md. This provider keeps the same caching rules and adds:
// its own timeout per fetch, a single-flight slot that is released on timeout, and a catch on everything.
import type { AccessToken, TokenCredential } from '@azure/identity'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.ts'

export interface TokenProviderOptions {
  credential: TokenCredential
  /** Shown in logs and errors, e.g. "DefaultAzureCredential (AZURE_TOKEN_CREDENTIALS=prod)". */
  credentialName: string
  scope: string
  /** Give up on one fetch after this long (AZURE_TOKEN_TIMEOUT_MS). */
  timeoutMs: number
  log: FastifyBaseLogger
  /** Start a background refresh when less than this is left (default 4 min: inside MSAL's 5-min window, so it really refetches). */
  refreshAheadMs?: number
  /** Never hand out a token with less than this left; callers wait for a fresh one instead (default 30 s). */
  minValidityMs?: number
  /** After a failed background refresh, wait this long before the next attempt (default 3 s). */
  retryDelayMs?: number
  now?: () => number
}

export interface TokenStats {
  fetches: number
  failures: number
  timeouts: number
}

interface CachedToken {
  token: string
  expiresOnMs: number
  refreshAtMs: number
}

export class CachedTokenProvider {
  readonly stats: TokenStats = { fetches: 0, failures: 0, timeouts: 0 }
  /** Why the last fetch failed (no secrets), until one succeeds. */
  lastError: string | undefined

  readonly #opts: Required<Omit<TokenProviderOptions, 'log'>> & { log: FastifyBaseLogger }
  #current: CachedToken | undefined
  #inflight: Promise<string> | undefined
  #nextRetryAtMs = 0

  constructor (options: TokenProviderOptions) {
    this.#opts = {
      refreshAheadMs: 4 * 60_000,
      minValidityMs: 30_000,
      retryDelayMs: 3_000,
      now: Date.now,
      ...options
    }
  }

  /** The function handed to the openai client: called on every attempt, usually answered from the cache. */
  readonly getToken = async (): Promise<string> => {
    const now = this.#opts.now()
    const current = this.#current
    if (current !== undefined && current.expiresOnMs - now > this.#opts.minValidityMs) {
      if (now >= current.refreshAtMs && now >= this.#nextRetryAtMs) this.#refreshInBackground()
      return current.token
    }
    return await this.#fetchShared()
  }

  /** True while a token with enough life left is cached. */
  hasValidToken (): boolean {
    return this.#current !== undefined && this.#current.expiresOnMs - this.#opts.now() > this.#opts.minValidityMs
  }

  /**
   * Without a usable token (warm-up failed, or the instance sat idle past expiry), start a fetch in the
   * background, at most once per retry delay. Readiness checks call this, so a not-ready instance that
   * gets no traffic still recovers by itself.
   */
  refreshIfStale (): void {
    if (!this.hasValidToken() && this.#inflight === undefined && this.#opts.now() >= this.#nextRetryAtMs) this.#refreshInBackground()
  }

  /** Fetch the first token before the server says it is ready. Never throws: failures are logged and counted. */
  async warmUp (): Promise<boolean> {
    try {
      await this.#fetchShared()
      return true
    } catch {
      return false
    }
  }

  #refreshInBackground (): void {
    // Errors are logged in #fetchOnce; callers keep the current token meanwhile.
    this.#fetchShared().catch(() => {})
  }

  #fetchShared (): Promise<string> {
    if (this.#inflight !== undefined) return this.#inflight
    const attempt = this.#fetchOnce()
    this.#inflight = attempt
    const release = (): void => { if (this.#inflight === attempt) this.#inflight = undefined }
    attempt.then(release, release)
    return attempt
  }

  async #fetchOnce (): Promise<string> {
    const { credential, credentialName, scope, timeoutMs, log, now } = this.#opts
    this.stats.fetches++
    const started = now()
    const abort = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>(resolve => {
      timer = setTimeout(resolve, timeoutMs, 'timeout')
      timer.unref()
    })
    const fetch = credential.getToken(scope, { abortSignal: abort.signal })
    fetch.catch(() => {}) // if we stop waiting for it, its late failure must not become unhandled

    let result: AccessToken | null | 'timeout'
    try {
      result = await Promise.race([fetch, timeout])
    } catch (err) {
      throw this.#failed(`${credentialName} failed: ${errorSummary(err)}`, err)
    } finally {
      clearTimeout(timer)
    }
    if (result === 'timeout') {
      abort.abort() // ignored by managed identity in 4.14, honoured elsewhere
      this.stats.timeouts++
      throw this.#failed(`${credentialName} did not answer within ${timeoutMs} ms`)
    }
    if (result === null || result.expiresOnTimestamp <= now()) {
      throw this.#failed(`${credentialName} returned ${result === null ? 'no token' : 'an expired token'}`)
    }

    const previous = this.#current
    this.#current = {
      token: result.token,
      expiresOnMs: result.expiresOnTimestamp,
      refreshAtMs: this.#refreshAt(result, previous)
    }
    this.lastError = undefined
    this.#nextRetryAtMs = 0
    log.info({ credential: credentialName, expiresOn: new Date(result.expiresOnTimestamp).toISOString(), fetchMs: now() - started, fetches: this.stats.fetches }, 'access token acquired')
    return result.token
  }

  #refreshAt (token: AccessToken, previous: CachedToken | undefined): number {
    const now = this.#opts.now()
    const lifetime = token.expiresOnTimestamp - now
    let at = token.refreshAfterTimestamp ?? token.expiresOnTimestamp - Math.min(this.#opts.refreshAheadMs, lifetime / 2)
    // The credential's own cache handed back the token we already had: do not ask again at once.
    if (previous !== undefined && previous.token === token.token) at = Math.max(at, now + this.#opts.retryDelayMs)
    return at
  }

  #failed (reason: string, cause?: unknown): AppError {
    this.stats.failures++
    this.lastError = reason
    this.#nextRetryAtMs = this.#opts.now() + this.#opts.retryDelayMs
    this.#opts.log.warn({ failures: this.stats.failures, reason }, 'access token fetch failed')
    return new AppError('AUTH_UNAVAILABLE', `No Microsoft Entra ID token could be obtained: ${reason}.`, { cause })
  }
}

/** The error's class and first line, cut short: enough to tell which credential failed, no payloads. */
function errorSummary (err: unknown): string {
  if (!(err instanceof Error)) return 'unknown error'
  const firstLine = err.message.split('\n')[0]?.slice(0, 300) ?? ''
  return `${err.name}: ${redactTokens(firstLine)}`
}

/** Belt and braces: nothing that looks like a JWT leaves this module. */
export function redactTokens (text: string): string {
  return text.replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, '[redacted]')
}
