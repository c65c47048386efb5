// The subscription sockets' lifecycle, where mercurius leaves it open: who is calling (the
// `connection_init` payload, verified by the same verifier as HTTP), the close codes graphql-ws defines
// for a refusal (4401 unauthenticated, 4403 forbidden; also 4408 init timeout, 4429 a second init),
// the end of a connection when its token expires, and a clean 1001 for every socket at shutdown.
//
// mercurius reads `connection_init` itself but answers a refusal with a message the protocol does not
// have and a close without a code. So this module listens on each socket first (its listener is added
// when the socket opens, before mercurius'), verifies the payload as soon as it arrives, and closes
// with the right code; mercurius' subscription context function then only waits for the outcome.
//
// The same listener keeps each socket's running subscription ids (graphql-transport-ws: a `subscribe`
// with an id in use closes the socket with 4409, which mercurius does not do: it would replace the
// running one without ending it), and from them closes an authenticated socket that has held no
// subscription for SUBSCRIPTIONS_IDLE_TIMEOUT_MS. A caller keeps at most `socketsPerCaller` authenticated
// sockets on an instance: one more is closed with 1013.
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
  subscriberExists: 4409,
  tooManyInits: 4429,
  normal: 1000
} as const

export type ConnectionRefusal =
  'unauthenticated' | 'forbidden' | 'unavailable' | 'init_timeout' | 'too_many_inits' | 'max_connections' | 'expired' | 'failed_subscriptions' |
  'per_caller_connections' | 'idle' | 'duplicate_id'

export interface ConnectionsOptions {
  verify: CallerVerifier
  log: FastifyBaseLogger
  /** Anonymous callers share one identity: in production they may not watch (as with history). */
  production: boolean
  initTimeoutMs: number
  /** Sockets kept at most; more are closed with 1013 at once. */
  maxConnections: number
  /** Authenticated sockets one caller keeps at most; more are closed with 1013 when they authenticate. */
  socketsPerCaller: number
  /** An authenticated socket without a subscription this long is closed with 1000. */
  idleTimeoutMs: number
  refused?: (reason: ConnectionRefusal) => void
}

type Outcome = { ok: true, caller: Caller } | { ok: false }

interface Connection {
  initTimer: NodeJS.Timeout | null
  expiryTimer: NodeJS.Timeout | null
  idleTimer: NodeJS.Timeout | null
  /** Set once the socket is authenticated (and counted in its caller's sockets). */
  callerId: string | null
  /** The ids of the subscriptions running on this socket, as the client and mercurius' messages tell. */
  running: Set<string>
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
  readonly #socketsByCaller = new Map<string, number>()
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
      initTimer: setTimeout(() => { this.#refuse(socket, 'init_timeout', CLOSE.initTimeout, 'Connection initialisation timeout') }, initTimeoutMs).unref(),
      expiryTimer: null,
      idleTimer: null,
      callerId: null,
      running: new Set(),
      outcome: null,
      closed: new AbortController(),
      failures: 0
    }
    this.#open.set(socket, connection)
    // Messages pass through here before any listener (mercurius') hears them: a refused one is not heard.
    const emit = socket.emit.bind(socket) as (event: string | symbol, ...args: unknown[]) => boolean
    socket.emit = ((event: string | symbol, ...args: unknown[]) => {
      if (event === 'message' && !this.#onMessage(socket, connection, args[0], args[1] === true)) return false
      return emit(event, ...args)
    }) as WebSocket['emit']
    this.#watchSent(socket, connection)
    socket.once('close', () => {
      clearTimeout(connection.initTimer ?? undefined)
      clearTimeout(connection.expiryTimer ?? undefined)
      clearTimeout(connection.idleTimer ?? undefined)
      connection.closed.abort()
      this.#open.delete(socket)
      if (connection.callerId !== null) {
        const left = (this.#socketsByCaller.get(connection.callerId) ?? 1) - 1
        if (left === 0) this.#socketsByCaller.delete(connection.callerId)
        else this.#socketsByCaller.set(connection.callerId, left)
      }
    })
  }

  /**
   * mercurius ends a subscription by sending `complete` (its stream ended) or `error` (it failed) for its
   * id: from then on the id is free again. Its messages are JSON.stringify({ type, id, payload }).
   */
  #watchSent (socket: WebSocket, connection: Connection): void {
    const send = socket.send.bind(socket) as (...args: unknown[]) => void
    socket.send = ((data: unknown, ...rest: unknown[]) => {
      if (typeof data === 'string' && (data.startsWith('{"type":"complete"') || data.startsWith('{"type":"error"'))) {
        try {
          const { id } = JSON.parse(data) as { id?: unknown }
          if (typeof id === 'string') this.#ended(socket, connection, id)
        } catch {}
      }
      send(data, ...rest)
    }) as WebSocket['send']
  }

  #started (connection: Connection, id: string): void {
    connection.running.add(id)
    clearTimeout(connection.idleTimer ?? undefined)
    connection.idleTimer = null
  }

  #ended (socket: WebSocket, connection: Connection, id: string): void {
    if (!connection.running.delete(id)) return
    if (connection.running.size === 0 && connection.callerId !== null) this.#idle(socket, connection)
  }

  /** Starts the idle clock of an authenticated socket that holds no subscription. */
  #idle (socket: WebSocket, connection: Connection): void {
    clearTimeout(connection.idleTimer ?? undefined)
    connection.idleTimer = setTimeout(() => {
      this.#refuse(socket, 'idle', CLOSE.normal, 'Idle: no subscription')
    }, this.#options.idleTimeoutMs).unref()
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

  /** Whether mercurius may have the message: not once the socket is closing (after a refusal, say). */
  #onMessage (socket: WebSocket, connection: Connection, data: unknown, isBinary: boolean): boolean {
    if (socket.readyState !== socket.OPEN) return false
    this.#inspect(socket, connection, data, isBinary)
    return socket.readyState === socket.OPEN
  }

  #inspect (socket: WebSocket, connection: Connection, data: unknown, isBinary: boolean): void {
    if (isBinary || !Buffer.isBuffer(data)) return // mercurius refuses these itself
    // Only connection_init, subscribe and complete matter here: the rest (ping, pong) is not parsed.
    if (!data.includes('connection_init') && !data.includes('subscribe') && !data.includes('complete')) return
    let message: unknown
    try {
      message = JSON.parse(data.toString('utf8'))
    } catch {
      return // mercurius answers malformed messages
    }
    if (typeof message !== 'object' || message === null) return
    const { type, id } = message as { type?: unknown, id?: unknown }
    if (type === 'subscribe' && typeof id === 'string') {
      if (connection.running.has(id)) {
        // Closed before mercurius sees it (it would replace the running one without ending it).
        this.#refuse(socket, 'duplicate_id', CLOSE.subscriberExists, `Subscriber for ${id} already exists`)
        return
      }
      this.#started(connection, id)
      return
    }
    if (type === 'complete' && typeof id === 'string') {
      this.#ended(socket, connection, id)
      return
    }
    if (type !== 'connection_init') return
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
    // The socket may have closed while the caller was verified: nothing to set up for it.
    if (connection.closed.signal.aborted) return { ok: false }
    const sockets = this.#socketsByCaller.get(caller.id) ?? 0
    if (sockets >= this.#options.socketsPerCaller) {
      this.#refuse(socket, 'per_caller_connections', CLOSE.tryAgainLater, 'Too many connections for this caller')
      return { ok: false }
    }
    this.#socketsByCaller.set(caller.id, sockets + 1)
    connection.callerId = caller.id
    if (connection.running.size === 0) this.#idle(socket, connection)
    if (caller.expiresAt !== undefined) {
      // The token's end is the connection's: 4403, which graphql-ws' client retries, asking its
      // connectionParams again (for a fresh token), as graphql-ws' own recipe for expiring tokens does.
      const delay = Math.min(MAX_TIMER_MS, Math.max(0, caller.expiresAt.getTime() - Date.now()))
      connection.expiryTimer = setTimeout(() => { this.#refuse(socket, 'expired', CLOSE.forbidden, 'Token expired') }, delay).unref()
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
