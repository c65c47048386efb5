// A cached bearer-token provider: one per process, shared by every request.
//
// Why not @azure/identity's getBearerTokenProvider? In 4.14 its background refresh is not awaited
// (a refresh failing until expiry crashes the process with an unhandled rejection) and managed-identity
// requests have no timeout and ignore abort signals (one hung fetch blocks every caller forever).
// This provider keeps the same caching rules and adds:
//
// - At most ONE token fetch outstanding, ever. Callers without a usable token wait for the fetch in
//   flight; after a failure they fail at once with its reason until the retry delay has passed (a hung
//   identity endpoint used to get a new fetch, and a new connection, per request).
// - A timeout per fetch that aborts the underlying request: the signal goes to `credential.getToken()`
//   and, through an AsyncLocalStorage, to the credential's HTTP client (src/azure/identity-http.ts),
//   because managed identity ignores `abortSignal`. The aborted request's socket is destroyed. The slot
//   stays taken until the credential's call has really ended; one that ignores the abort is given up
//   on (logged, counted) after `abandonAfterMs`, so a broken credential cannot block the service forever.
// - Short-lived tokens are used: a token is handed out while it has more than the minimum validity left,
//   or a quarter of its lifetime for tokens shorter than that, and refreshed ahead of that point. An
//   identity endpoint issuing short tokens is logged once (not per request).
// - A catch on everything: no background failure becomes an unhandled rejection.
import type { AccessToken, TokenCredential } from '@azure/identity'
import type { FastifyBaseLogger } from 'fastify'
import { TokenUnavailableError } from '../errors.ts'
import { tokenFetchSignal } from './identity-http.ts'
import type { IssuedToken, TokenRequest, TokenSource } from './token-source.ts'

export interface TokenProviderOptions {
  credential: TokenCredential
  /** Shown in logs and errors, e.g. "DefaultAzureCredential (AZURE_TOKEN_CREDENTIALS=prod)". */
  credentialName: string
  scope: string
  /** Give up on one fetch after this long, and abort it (AZURE_TOKEN_TIMEOUT_MS). */
  timeoutMs: number
  log: FastifyBaseLogger
  /** Start a background refresh when less than this is left (default 4 min: inside MSAL's 5-min window, so it really refetches). */
  refreshAheadMs?: number
  /**
   * Hand out a token only while it has more than this left (default 30 s); with less, callers wait for a
   * fresh one. For a token whose whole lifetime is short, a quarter of its lifetime instead.
   */
  minValidityMs?: number
  /** After a failed fetch, wait this long before the next one; callers without a token fail at once meanwhile (default 3 s). */
  retryDelayMs?: number
  /** A timed-out fetch that has not ended this long after its abort is given up on, freeing the slot (default: timeoutMs). */
  abandonAfterMs?: number
  now?: () => number
}

export interface TokenStats {
  fetches: number
  failures: number
  timeouts: number
  /** Timed-out fetches that did not end when aborted (the credential ignored the abort). */
  abandoned: number
}

interface CachedToken extends IssuedToken {
  refreshAtMs: number
  /** The least time left at which this token is still handed out. */
  minValidityMs: number
}

/** A fetched token with no more than this left counts as expired. */
const EXPIRED_WITHIN_MS = 1_000

export class CachedTokenProvider implements TokenSource {
  readonly stats: TokenStats = { fetches: 0, failures: 0, timeouts: 0, abandoned: 0 }
  /** Why the last fetch failed (no secrets), until one succeeds. */
  lastError: string | undefined

  readonly #opts: Required<Omit<TokenProviderOptions, 'log' | 'abandonAfterMs'>> & { log: FastifyBaseLogger, abandonAfterMs: number }
  #current: CachedToken | undefined
  /** What callers wait on: settles with the token, or with the failure or timeout. */
  #inflight: Promise<CachedToken> | undefined
  /** The credential's own call, until it has really ended (it may outlive a timeout by a little). */
  #outstanding: Promise<unknown> | undefined
  #nextRetryAtMs = 0
  #shortLivedLogged = false
  /** When the last fetch succeeded: a caller asking for more life than the token has does not refetch in a loop. */
  #lastSuccessAtMs = Number.NEGATIVE_INFINITY
  readonly #listeners = new Set<(token: IssuedToken) => void>()

  constructor (options: TokenProviderOptions) {
    this.#opts = {
      refreshAheadMs: 4 * 60_000,
      minValidityMs: 30_000,
      retryDelayMs: 3_000,
      abandonAfterMs: options.timeoutMs,
      now: Date.now,
      ...options
    }
  }

  get scope (): string {
    return this.#opts.scope
  }

  /**
   * The function handed to the openai client (called with no argument on every attempt, usually answered from
   * the cache); `minValidityMs` asks for a token with at least that much left (see getAccessToken).
   */
  readonly getToken = async (request?: TokenRequest): Promise<string> => (await this.getAccessToken(request)).token

  /**
   * A token with more than `minValidityMs` left (at least the provider's own minimum). With less, the caller
   * waits for the shared fetch (one per scope at a time); a fresh token that still has less (short-lived tokens,
   * or the credential's cache handing back the same one) is returned all the same, and no second fetch is made
   * within the retry delay. If that fetch fails, a token still within the provider's own rule is returned.
   */
  async getAccessToken (request: TokenRequest = {}): Promise<IssuedToken> {
    const now = this.#opts.now()
    const current = this.#current
    if (current !== undefined && this.#fresh(current, now)) {
      const wanted = request.minValidityMs ?? 0
      const enough = current.expiresOnMs - now > wanted || now - this.#lastSuccessAtMs < this.#opts.retryDelayMs
      if (enough) {
        if (now >= current.refreshAtMs) this.#refreshInBackground()
        return issued(current)
      }
      try {
        return issued(await this.#fetchShared())
      } catch (err) {
        if (this.#current !== undefined && this.#fresh(this.#current, this.#opts.now())) return issued(this.#current)
        throw err
      }
    }
    return issued(await this.#fetchShared())
  }

  onToken (listener: (token: IssuedToken) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  current (): IssuedToken | undefined {
    const current = this.#current
    return current !== undefined && current.expiresOnMs > this.#opts.now() ? issued(current) : undefined
  }

  /** Why no token can be had right now (the last fetch's failure), or undefined while a usable one is cached or none was asked for yet. */
  failure (): string | undefined {
    return this.hasValidToken() ? undefined : this.lastError
  }

  /** True while a token with enough life left is cached. */
  hasValidToken (): boolean {
    return this.#current !== undefined && this.#fresh(this.#current, this.#opts.now())
  }

  /**
   * Without a usable token (warm-up failed, or the instance sat idle past expiry), start a fetch in the
   * background, at most once per retry delay. Readiness checks call this, so a not-ready instance that
   * gets no traffic still recovers by itself.
   */
  refreshIfStale (): void {
    if (!this.hasValidToken()) this.#refreshInBackground()
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

  #fresh (token: CachedToken, now: number): boolean {
    return token.expiresOnMs - now > token.minValidityMs
  }

  #refreshInBackground (): void {
    if (this.#inflight !== undefined || this.#outstanding !== undefined || this.#opts.now() < this.#nextRetryAtMs) return
    // Errors are logged in #fetchOnce; callers keep the current token meanwhile.
    this.#fetchShared().catch(() => {})
  }

  /** Joins the fetch in flight, or starts one; fails at once while the last failure's retry delay runs. */
  #fetchShared (): Promise<CachedToken> {
    if (this.#inflight !== undefined) return this.#inflight
    if (this.#outstanding !== undefined || this.#opts.now() < this.#nextRetryAtMs) {
      // The one fetch of this outage has failed (or timed out and is still ending): no second one yet.
      return Promise.reject(new TokenUnavailableError(
        `No Microsoft Entra ID token could be obtained: ${this.lastError ?? 'the previous token request has not ended yet'}.`))
    }
    const attempt = this.#fetchOnce()
    this.#inflight = attempt
    const release = (): void => { if (this.#inflight === attempt) this.#inflight = undefined }
    attempt.then(release, release)
    return attempt
  }

  async #fetchOnce (): Promise<CachedToken> {
    const { credential, credentialName, scope, timeoutMs, log, now } = this.#opts
    this.stats.fetches++
    const started = now()
    const abort = new AbortController()
    // The signal reaches the credential's HTTP client through the async context, since managed identity drops it.
    const fetch = tokenFetchSignal.run(abort.signal, async () => await credential.getToken(scope, { abortSignal: abort.signal }))
    const ended = fetch.then(() => {}, () => {}) // if we stop waiting for it, its late failure must not become unhandled
    this.#outstanding = ended
    void ended.then(() => { if (this.#outstanding === ended) this.#outstanding = undefined })

    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>(resolve => {
      timer = setTimeout(resolve, timeoutMs, 'timeout')
      timer.unref()
    })
    let result: AccessToken | null | 'timeout'
    try {
      result = await Promise.race([fetch, timeout])
    } catch (err) {
      throw this.#failed(`${credentialName} failed: ${errorSummary(err)}`, err)
    } finally {
      clearTimeout(timer)
    }
    if (result === 'timeout') {
      abort.abort() // closes the request's socket (identity-http.ts); the credential's call then ends
      this.stats.timeouts++
      this.#abandonIfStuck(ended)
      throw this.#failed(`${credentialName} did not answer within ${timeoutMs} ms`)
    }
    const at = now()
    if (result === null || result.expiresOnTimestamp - at <= EXPIRED_WITHIN_MS) {
      throw this.#failed(`${credentialName} returned ${result === null ? 'no token' : 'an expired token'}`)
    }

    const lifetimeMs = result.expiresOnTimestamp - at
    const minValidityMs = Math.min(this.#opts.minValidityMs, lifetimeMs / 4)
    const previous = this.#current
    const fetched: CachedToken = {
      token: result.token,
      expiresOnMs: result.expiresOnTimestamp,
      obtainedAtMs: at,
      refreshAtMs: this.#refreshAt(result, previous, lifetimeMs, minValidityMs),
      minValidityMs
    }
    this.#current = fetched
    this.lastError = undefined
    this.#nextRetryAtMs = 0
    this.#lastSuccessAtMs = at
    log.info({ credential: credentialName, scope, expiresOn: new Date(result.expiresOnTimestamp).toISOString(), fetchMs: at - started, fetches: this.stats.fetches }, 'access token acquired')
    const shortLived = lifetimeMs < Math.max(this.#opts.refreshAheadMs, this.#opts.minValidityMs)
    if (shortLived && !this.#shortLivedLogged) {
      const { minValidityMs, refreshAheadMs } = this.#opts
      log.warn({ credential: credentialName, lifetimeMs: Math.round(lifetimeMs), minValidityMs, refreshAheadMs },
        'the identity endpoint issues short-lived access tokens: each is used until shortly before it expires and refreshed early, so token requests are frequent (logged once)')
    }
    this.#shortLivedLogged = shortLived
    if (previous?.token !== fetched.token) this.#tell(fetched)
    return fetched
  }

  /** A listener's failure is logged, never thrown into the fetch that found the token. */
  #tell (token: CachedToken): void {
    const copy = issued(token)
    for (const listener of this.#listeners) {
      try {
        listener(copy)
      } catch (err) {
        this.#opts.log.error({ scope: this.#opts.scope, err: errorSummary(err) }, 'a token listener failed')
      }
    }
  }

  #refreshAt (token: AccessToken, previous: CachedToken | undefined, lifetimeMs: number, minValidityMs: number): number {
    const now = this.#opts.now()
    let at = token.refreshAfterTimestamp ?? token.expiresOnTimestamp - Math.min(this.#opts.refreshAheadMs, lifetimeMs / 2)
    // Refresh while the token is still handed out, so callers need not wait for the next one.
    at = Math.min(at, token.expiresOnTimestamp - 2 * minValidityMs)
    // The credential's own cache handed back the token we already had: do not ask again at once.
    if (previous !== undefined && previous.token === token.token) at = Math.max(at, now + this.#opts.retryDelayMs)
    return at
  }

  /** A timed-out fetch that does not end after its abort stops blocking new fetches after abandonAfterMs. */
  #abandonIfStuck (ended: Promise<void>): void {
    const timer = setTimeout(() => {
      if (this.#outstanding !== ended) return
      this.#outstanding = undefined
      this.stats.abandoned++
      this.#opts.log.error({ credential: this.#opts.credentialName, abandoned: this.stats.abandoned },
        'a timed-out token request did not end when aborted; giving up on it (its connection may stay open)')
    }, this.#opts.abandonAfterMs)
    timer.unref()
    void ended.then(() => { clearTimeout(timer) })
  }

  #failed (reason: string, cause?: unknown): TokenUnavailableError {
    this.stats.failures++
    this.lastError = reason
    this.#nextRetryAtMs = this.#opts.now() + this.#opts.retryDelayMs
    this.#opts.log.warn({ scope: this.#opts.scope, failures: this.stats.failures, reason }, 'access token fetch failed')
    return new TokenUnavailableError(`No Microsoft Entra ID token could be obtained: ${reason}.`, { cause })
  }
}

/** What callers see of a cached token: a copy, without the provider's bookkeeping. */
function issued (token: CachedToken): IssuedToken {
  return { token: token.token, expiresOnMs: token.expiresOnMs, obtainedAtMs: token.obtainedAtMs }
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
