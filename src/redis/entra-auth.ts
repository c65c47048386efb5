// REDIS_AUTH=entra: every Redis connection authenticates as the managed identity (user = its object id, password
// = a token for Redis's scope) and authenticates again (`AUTH user token`) before that token expires, by
// refreshMargin (min(3 min, a quarter of its lifetime)) plus jitter, since Azure closes a connection whose token
// has expired. With RESP3 (ioredis 6's default) AUTH is allowed on a subscribed connection too, so the
// subscriber carrying live updates re-authenticates in place: no reconnect, no event lost. Each connection's
// `options.password` is kept current, so a reconnect (ioredis reads it at each connect) sends a live token.
// Tokens and the user name never reach a log.
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { decodeJwt } from 'jose'
import { jitter, refreshMargin } from '../azure/margins.ts'
import type { IssuedToken, TokenSource } from '../azure/token-source.ts'

export interface RedisEntraAuthOptions {
  /** REDIS_USERNAME, or null: the token's `oid` claim (read, never verified: Redis verifies the token). */
  username: string | null
  log: FastifyBaseLogger
  random?: () => number
  /** How long to wait before asking again for a token, or retrying a refused re-AUTH. */
  retryMs?: number
}

export interface RedisAuthStats {
  /** AUTHs sent on open connections (not counting the HELLO of each connect). */
  reauths: number
  /** AUTHs refused or failed (retried until the token expires). */
  reauthFailures: number
}

interface Watched {
  redis: Redis
  name: string
  /** The token this connection is authenticated with (at its last connect or AUTH). */
  token: IssuedToken | undefined
  /** The token in `options.password` when the connection last started connecting. */
  connectingWith: string | undefined
  timer: NodeJS.Timeout | undefined
  busy: boolean
}

export class RedisEntraAuth {
  readonly stats: RedisAuthStats = { reauths: 0, reauthFailures: 0 }
  readonly #tokens: TokenSource
  readonly #options: Required<Omit<RedisEntraAuthOptions, 'username'>> & { username: string | null }
  readonly #watched = new Set<Watched>()
  /** Tokens handed to connections, by value, until they expire: which one a connection's handshake used. */
  readonly #known = new Map<string, IssuedToken>()
  #current: { token: IssuedToken, username: string } | undefined
  #pollTimer: NodeJS.Timeout | undefined
  #stopped = false
  #noOidLogged = false
  readonly #unsubscribe: () => void

  constructor (tokens: TokenSource, options: RedisEntraAuthOptions) {
    this.#tokens = tokens
    this.#options = { random: Math.random, retryMs: 5000, ...options }
    this.#unsubscribe = tokens.onToken(token => { this.#use(token) })
  }

  /** Fetches the first token (bounded by the provider's timeout); without one, keeps asking every retryMs. */
  async start (): Promise<void> {
    try {
      this.#use(await this.#tokens.getAccessToken())
    } catch (err) {
      this.#options.log.warn({ err: errorSummary(err) }, 'Redis: no Microsoft Entra ID token yet; what uses Redis (rate limits, live updates between instances) waits for one')
      this.#pollUntilToken()
    }
  }

  /** The current credentials for a new connection; none yet: it fails to authenticate, and reconnects with them once a token comes. */
  credentials (): { username?: string, password?: string } {
    return this.#current === undefined ? {} : { username: this.#current.username, password: this.#current.token.token }
  }

  /** Keeps this connection authenticated until it ends. */
  watch (redis: Redis, name: string): void {
    const watched: Watched = { redis, name, token: undefined, connectingWith: undefined, timer: undefined, busy: false }
    this.#watched.add(watched)
    redis.on('connecting', () => { watched.connectingWith = redis.options.password ?? undefined })
    redis.on('ready', () => {
      watched.token = watched.connectingWith === undefined ? undefined : this.#known.get(watched.connectingWith)
      this.#arm(watched)
    })
    redis.once('end', () => {
      clearTimeout(watched.timer)
      this.#watched.delete(watched)
    })
  }

  stop (): void {
    this.#stopped = true
    this.#unsubscribe()
    clearTimeout(this.#pollTimer)
    for (const watched of this.#watched) clearTimeout(watched.timer)
    this.#watched.clear()
  }

  #use (token: IssuedToken): void {
    const now = Date.now()
    for (const [value, known] of this.#known) if (known.expiresOnMs <= now) this.#known.delete(value)
    if (this.#current !== undefined && this.#current.token.expiresOnMs >= token.expiresOnMs) return
    const username = this.#options.username ?? oidOf(token.token)
    if (username === undefined) {
      if (!this.#noOidLogged) this.#options.log.error('Redis: the Microsoft Entra ID token has no oid claim to use as the Redis user; set REDIS_USERNAME to the identity\'s object id')
      this.#noOidLogged = true
      return
    }
    this.#known.set(token.token, token)
    this.#current = { token, username }
    for (const { redis } of this.#watched) {
      redis.options.username = username
      redis.options.password = token.token
    }
  }

  #pollUntilToken (): void {
    if (this.#stopped || this.#current !== undefined) return
    this.#pollTimer = setTimeout(() => {
      this.#tokens.getAccessToken().then(token => { this.#use(token) }, () => { this.#pollUntilToken() })
    }, this.#options.retryMs)
    this.#pollTimer.unref()
  }

  /** Schedules this connection's next AUTH: refreshMargin + jitter before its token expires. */
  #arm (watched: Watched, delayMs?: number): void {
    clearTimeout(watched.timer)
    if (this.#stopped) return
    const token = watched.token
    if (token === undefined) {
      // Connected without a token we know (none yet): AUTH as soon as one comes.
      if (delayMs === undefined && this.#current === undefined) delayMs = this.#options.retryMs
    }
    let wait = delayMs ?? 0
    if (delayMs === undefined && token !== undefined) {
      const lifetime = token.expiresOnMs - token.obtainedAtMs
      wait = token.expiresOnMs - refreshMargin(lifetime) - jitter(lifetime, this.#options.random) - Date.now()
    }
    watched.timer = setTimeout(() => { void this.#reauthenticate(watched) }, Math.max(0, wait))
    watched.timer.unref()
  }

  async #reauthenticate (watched: Watched): Promise<void> {
    const { redis } = watched
    if (this.#stopped || watched.busy || redis.status !== 'ready') return // 'ready' re-arms after a reconnect
    watched.busy = true
    const before = watched.token
    try {
      const lifetime = before === undefined ? 0 : before.expiresOnMs - before.obtainedAtMs
      // Ask for more life than this token has left: the provider's shared fetch, when it has no newer one yet.
      const token = await this.#tokens.getAccessToken({ minValidityMs: 2 * refreshMargin(lifetime) })
      this.#use(token)
      const current = this.#current
      if (current === undefined) throw new Error('no token with a Redis user')
      if (before !== undefined && current.token.token === before.token) throw new Error('no newer token yet')
      await redis.auth(current.username, current.token.token)
      watched.token = current.token
      this.stats.reauths++
      this.#arm(watched)
    } catch (err) {
      this.stats.reauthFailures++
      const left = before === undefined ? Number.POSITIVE_INFINITY : before.expiresOnMs - Date.now()
      const tokenLeftMs = Number.isFinite(left) ? Math.round(left) : undefined
      this.#options.log.warn({ connection: watched.name, err: errorSummary(err), tokenLeftMs },
        'Redis: re-authentication failed; retrying until the token expires (then the server closes the connection and it reconnects with a new token)')
      if (left > 0) this.#arm(watched, Math.min(this.#options.retryMs, Math.max(250, left / 2)))
    } finally {
      watched.busy = false
    }
  }
}

/** The token's oid claim (the identity's object id), read without verifying; undefined when absent or not a JWT. */
function oidOf (token: string): string | undefined {
  try {
    const { oid } = decodeJwt(token)
    return typeof oid === 'string' && oid.length > 0 ? oid : undefined
  } catch {
    return undefined
  }
}

/** The error's class and message's first line, cut short; a Redis error (WRONGPASS …) carries no password. */
function errorSummary (err: unknown): string {
  if (!(err instanceof Error)) return 'unknown error'
  return `${err.name}: ${err.message.split('\n')[0]!.slice(0, 200)}`
}
