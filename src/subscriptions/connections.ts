// The subscription sockets' lifecycle, where mercurius leaves it open: who is calling (the
// `connection_init` payload, verified by the same verifier as HTTP), the close codes graphql-ws defines
// for a refusal (4401 unauthenticated, 4403 forbidden; also 4408 init timeout, 4429 a second init),
// the end of a connection when its token expires, and a clean 1001 for every socket at shutdown.
//
// mercurius reads `connection_init` itself but answers a refusal with a message the protocol does not
// have and a close without a code. So this module listens on each socket first (its listener is added
// when the socket opens, before mercurius'), verifies the payload as soon as it arrives, and closes
// with the right code; mercurius' subscription context function then only waits for the outcome.
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from '@fastify/websocket'
import { AppError, CallerVerificationUnavailableError, ForbiddenError, UnauthenticatedError } from '../errors.ts'
import type { Caller } from '../callers/caller.ts'
import { credentialsFromPayload, type CallerVerifier } from '../callers/verify.ts'

/** Close codes: graphql-ws' (CloseCode) and RFC 6455's. */
export const CLOSE = {
  goingAway: 1001,
  internalError: 1011,
  tryAgainLater: 1013,
  unauthorized: 4401,
  forbidden: 4403,
  badRequest: 4400,
  initTimeout: 4408,
  tooManyInits: 4429
} as const

export type ConnectionRefusal =
  'unauthenticated' | 'forbidden' | 'unavailable' | 'init_timeout' | 'too_many_inits' | 'max_connections' | 'expired' | 'failed_subscriptions'

export interface ConnectionsOptions {
  verify: CallerVerifier
  log: FastifyBaseLogger
  /** Anonymous callers share one identity: in production they may not watch (as with history). */
  production: boolean
  initTimeoutMs: number
  /** Sockets kept at most; more are closed with 1013 at once. */
  maxConnections: number
  refused?: (reason: ConnectionRefusal) => void
}

type Outcome = { ok: true, caller: Caller } | { ok: false }

interface Connection {
  initTimer: NodeJS.Timeout | null
  expiryTimer: NodeJS.Timeout | null
  /** Set when `connection_init` arrives. */
  outcome: Promise<Outcome> | null
  closed: AbortController
  /** Subscriptions refused on this socket so far (see MAX_FAILED_SUBSCRIPTIONS). */
  failures: number
}

/** What an accepted socket's subscriptions get: who, a signal aborted when it closes, and where to report a refused start. */
export interface Accepted {
  caller: Caller
  closed: AbortSignal
  failed: () => void
}

/**
 * mercurius keeps what it made for a subscription that failed to start until its socket closes: a socket
 * that keeps starting refused subscriptions is closed (4400) before that adds up.
 */
const MAX_FAILED_SUBSCRIPTIONS = 100

/** setTimeout's longest delay (about 24.8 days): tokens live far shorter. */
const MAX_TIMER_MS = 2_147_483_647

export class Connections {
  readonly #options: ConnectionsOptions
  readonly #open = new Map<WebSocket, Connection>()
  #closing = false

  constructor (options: ConnectionsOptions) {
    this.#options = options
  }

  /** Sockets open now. */
  get open (): number { return this.#open.size }

  /** Called as a socket opens, before mercurius sees it. */
  track (socket: WebSocket): void {
    const { initTimeoutMs, maxConnections } = this.#options
    if (this.#closing) {
      socket.close(CLOSE.goingAway, 'Server shutting down')
      return
    }
    if (this.#open.size >= maxConnections) {
      this.#refuse(socket, 'max_connections', CLOSE.tryAgainLater, 'Too many connections')
      return
    }
    const connection: Connection = {
      initTimer: setTimeout(() => { this.#refuse(socket, 'init_timeout', CLOSE.initTimeout, 'Connection initialisation timeout') }, initTimeoutMs),
      expiryTimer: null,
      outcome: null,
      closed: new AbortController(),
      failures: 0
    }
    this.#open.set(socket, connection)
    socket.on('message', (data, isBinary) => { this.#onMessage(socket, connection, data, isBinary) })
    socket.once('close', () => {
      clearTimeout(connection.initTimer ?? undefined)
      clearTimeout(connection.expiryTimer ?? undefined)
      connection.closed.abort()
      this.#open.delete(socket)
    })
  }

  /**
   * For mercurius' subscription context (called while it handles `connection_init`): the caller, or null
   * when the socket was refused (and is being closed with the refusal's code).
   */
  async caller (socket: WebSocket): Promise<Accepted | null> {
    const connection = this.#open.get(socket)
    if (connection === undefined) return null
    if (connection.outcome === null) {
      // mercurius parsed a connection_init this module could not (binary frame, ...): refused.
      this.#refuse(socket, 'unauthenticated', CLOSE.unauthorized, 'Unauthorized')
      return null
    }
    const outcome = await connection.outcome
    if (!outcome.ok) return null
    const failed = (): void => {
      if (++connection.failures === MAX_FAILED_SUBSCRIPTIONS) this.#refuse(socket, 'failed_subscriptions', CLOSE.badRequest, 'Too many failed subscriptions')
    }
    return { caller: outcome.caller, closed: connection.closed.signal, failed }
  }

  /** Closes every socket with 1001 and waits up to `graceMs` for their closing handshakes; then cuts what is left. */
  async closeAll (graceMs: number): Promise<void> {
    this.#closing = true
    const sockets = [...this.#open.keys()]
    if (sockets.length === 0) return
    const closed = sockets.map(socket => new Promise<void>(resolve => {
      if (socket.readyState === socket.CLOSED) resolve()
      else socket.once('close', () => resolve())
    }))
    for (const socket of sockets) socket.close(CLOSE.goingAway, 'Server shutting down')
    let timer: NodeJS.Timeout | undefined
    const inTime = await Promise.race([
      Promise.all(closed).then(() => true),
      new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(false), graceMs) })
    ])
    clearTimeout(timer)
    if (!inTime) {
      const left = sockets.filter(socket => socket.readyState !== socket.CLOSED)
      this.#options.log.warn({ sockets: left.length }, 'subscriptions: sockets that did not close in time were cut')
      for (const socket of left) socket.terminate()
    }
  }

  #onMessage (socket: WebSocket, connection: Connection, data: unknown, isBinary: boolean): void {
    if (isBinary || !Buffer.isBuffer(data)) return // mercurius refuses these itself
    // After the first connection_init only a second one matters: look for it without parsing everything.
    if (connection.outcome !== null && !data.includes('connection_init')) return
    let message: unknown
    try {
      message = JSON.parse(data.toString('utf8'))
    } catch {
      return // mercurius answers malformed messages
    }
    if (typeof message !== 'object' || message === null || (message as { type?: unknown }).type !== 'connection_init') return
    if (connection.outcome !== null) {
      this.#refuse(socket, 'too_many_inits', CLOSE.tooManyInits, 'Too many initialisation requests')
      return
    }
    clearTimeout(connection.initTimer ?? undefined)
    connection.initTimer = null
    connection.outcome = this.#authenticate(socket, connection, (message as { payload?: unknown }).payload)
  }

  async #authenticate (socket: WebSocket, connection: Connection, payload: unknown): Promise<Outcome> {
    let caller: Caller
    try {
      caller = await this.#options.verify(credentialsFromPayload(payload))
      if (caller.kind === 'anonymous' && this.#options.production) {
        throw new ForbiddenError('Subscriptions need a signed-in caller: anonymous callers share one identity.')
      }
    } catch (err) {
      if (err instanceof UnauthenticatedError) this.#refuse(socket, 'unauthenticated', CLOSE.unauthorized, 'Unauthorized', err)
      else if (err instanceof ForbiddenError) this.#refuse(socket, 'forbidden', CLOSE.forbidden, 'Forbidden', err)
      else if (err instanceof CallerVerificationUnavailableError) this.#refuse(socket, 'unavailable', CLOSE.tryAgainLater, 'Try again later', err)
      else {
        this.#options.log.error({ err }, 'subscriptions: verifying a caller failed')
        socket.close(CLOSE.internalError, 'Internal error')
      }
      return { ok: false }
    }
    if (caller.expiresAt !== undefined) {
      // The token's end is the connection's: 4403, which graphql-ws' client retries, asking its
      // connectionParams again (for a fresh token), as graphql-ws' own recipe for expiring tokens does.
      const delay = Math.min(MAX_TIMER_MS, Math.max(0, caller.expiresAt.getTime() - Date.now()))
      connection.expiryTimer = setTimeout(() => { this.#refuse(socket, 'expired', CLOSE.forbidden, 'Token expired') }, delay)
    }
    return { ok: true, caller }
  }

  #refuse (socket: WebSocket, reason: ConnectionRefusal, code: number, text: string, err?: AppError): void {
    this.#options.refused?.(reason)
    // The reason only, as the HTTP hook logs it: never the token or key.
    this.#options.log.info({ reason, code: err?.code, detail: err?.message }, 'subscription socket refused')
    socket.close(code, text)
  }
}
