// The subscription sockets' lifecycle, where mercurius leaves it open: who is calling (the
// `connection_init` payload, verified by the same verifier as HTTP), the close codes graphql-ws defines
// for a refusal (4401 unauthenticated, 4403 forbidden; also 4408 init timeout, 4429 a second init),
// the end of a connection when its token expires, and a clean 1001 for every socket at shutdown.
//
// Every frame a client sends passes through here before mercurius hears it (the socket's `emit` is
// wrapped as it opens): it is parsed once (messages.ts), the socket's rules are enforced on the parsed
// message, and mercurius is handed that message re-serialised, with only its canonical fields. So our
// bookkeeping and mercurius never read a frame differently (a `"connection\u005finit"`, duplicate keys, a
// binary frame). The rules: one `connection_init` (a second: 4429), `subscribe` only after it (4401) and
// with an id not running on the socket (4409: mercurius would replace the running one without ending
// it), only the protocol's messages (anything else, binary frames included: 4400), at most
// SUBSCRIPTIONS_MESSAGES_PER_SECOND (beyond: 1008). Only graphql-transport-ws is spoken (4406 otherwise;
// the plugin already refuses other subprotocols at the upgrade).
//
// mercurius reads `connection_init` itself but answers a refusal with a message the protocol does not
// have and a close without a code: this module verifies the payload as soon as it arrives and closes with
// the right code; mercurius' subscription context function waits for the outcome, and for a refused socket
// never gets one (so mercurius neither acknowledges it nor starts its keep-alive timer).
//
// From the running subscription ids it closes an authenticated socket that has held no subscription for
// SUBSCRIPTIONS_IDLE_TIMEOUT_MS. A caller keeps at most `socketsPerCaller` authenticated sockets on an
// instance: one more is closed with 1013. What waits to be sent to a socket (frames in its buffer, events in
// its subscriptions' queues: see `backlog`) is bounded by SUBSCRIPTIONS_MAX_QUEUED_BYTES: a subscriber that
// does not read is closed with 1013 beyond.
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from '@fastify/websocket'
import { AppError, CallerVerificationUnavailableError, ForbiddenError, UnauthenticatedError } from '../errors.ts'
import type { Caller } from '../callers/caller.ts'
import { credentialsFromPayload, type CallerVerifier } from '../callers/verify.ts'
import { BadMessageError, parseClientMessage, serialise, type ClientMessage } from './messages.ts'
import { MessageRate } from './message-rate.ts'

/** The one subprotocol spoken (graphql-ws' client library's); the legacy `graphql-ws` one is refused. */
export const PROTOCOL = 'graphql-transport-ws'

/** Close codes: graphql-ws' (CloseCode) and RFC 6455's. */
export const CLOSE = {
  goingAway: 1001,
  policyViolation: 1008,
  internalError: 1011,
  tryAgainLater: 1013,
  unauthorized: 4401,
  forbidden: 4403,
  badRequest: 4400,
  subprotocolNotAcceptable: 4406,
  initTimeout: 4408,
  subscriberExists: 4409,
  tooManyInits: 4429,
  normal: 1000
} as const

export type ConnectionRefusal =
  'unauthenticated' | 'forbidden' | 'unavailable' | 'init_timeout' | 'too_many_inits' | 'max_connections' | 'expired' | 'failed_subscriptions' |
  'per_caller_connections' | 'idle' | 'duplicate_id' | 'bad_message' | 'message_rate' | 'subprotocol' | 'slow_consumer'

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
  /** Messages a socket may send per second (and in a burst); beyond, it is closed with 1008. */
  messagesPerSecond: number
  /** Bytes that may wait to be sent to one socket; beyond, it is closed with 1013. */
  maxQueuedBytes: number
  refused?: (reason: ConnectionRefusal) => void
}

type Outcome = { ok: true, caller: Caller } | { ok: false }

interface Connection {
  initTimer: NodeJS.Timeout | null
  expiryTimer: NodeJS.Timeout | null
  idleTimer: NodeJS.Timeout | null
  /** Set when a socket closed for its backlog does not finish closing: it is cut then. */
  cutTimer: NodeJS.Timeout | null
  /** Set once the socket is authenticated (and counted in its caller's sockets). */
  callerId: string | null
  /** The ids of the subscriptions running on this socket, as the client and mercurius' messages tell. */
  running: Set<string>
  /** Set when `connection_init` arrives. */
  outcome: Promise<Outcome> | null
  closed: AbortController
  /** Subscriptions refused on this socket so far (see MAX_FAILED_SUBSCRIPTIONS). */
  failures: number
  rate: MessageRate
  /** Estimated bytes of the events waiting in this socket's subscriptions' queues. */
  queuedBytes: number
}

/** What an accepted socket's subscriptions get: who, a signal aborted when it closes, and where to report a refused start. */
export interface Accepted {
  caller: Caller
  closed: AbortSignal
  failed: () => void
}

/** One subscription's account of the events waiting in its queue, counted in its socket's backlog. */
export interface Backlog {
  /** An event of `bytes` is queued; false when it must be dropped (the socket is closing, for its backlog maybe). */
  add (bytes: number): boolean
  /** Events of `bytes` left the queue (taken to be sent, or the queue ended). */
  remove (bytes: number): void
}

/**
 * mercurius keeps what it made for a subscription that failed to start until its socket closes: a socket
 * that keeps starting refused subscriptions is closed (4400) before that adds up.
 */
const MAX_FAILED_SUBSCRIPTIONS = 100

/** setTimeout's longest delay (about 24.8 days): tokens live far shorter. */
const MAX_TIMER_MS = 2_147_483_647

/** How long a socket closed for its backlog has to take its close frame before it is cut (ws' own wait is 30 s). */
const SLOW_CLOSE_GRACE_MS = 5_000

/** RFC 6455: a close frame's reason is at most 123 bytes (ws throws beyond). */
const MAX_CLOSE_REASON_BYTES = 123

export class Connections {
  readonly #options: ConnectionsOptions
  readonly #open = new Map<WebSocket, Connection>()
  readonly #bySignal = new WeakMap<AbortSignal, { socket: WebSocket, connection: Connection }>()
  readonly #socketsByCaller = new Map<string, number>()
  #closing = false

  constructor (options: ConnectionsOptions) {
    this.#options = options
  }

  /** Sockets open now. */
  get open (): number { return this.#open.size }

  /** Called as a socket opens, before mercurius sees it. */
  track (socket: WebSocket): void {
    const { initTimeoutMs, maxConnections, messagesPerSecond } = this.#options
    // Every message passes through here before any listener (mercurius') hears it, on a refused socket too:
    // mercurius hears only the messages accepted, as they were read.
    const emit = socket.emit.bind(socket) as (event: string | symbol, ...args: unknown[]) => boolean
    socket.emit = ((event: string | symbol, ...args: unknown[]) => {
      if (event !== 'message') return emit(event, ...args)
      const accepted = this.#receive(socket, args[0], args[1] === true)
      return accepted !== null && emit('message', accepted, false)
    }) as WebSocket['emit']
    if (this.#closing) {
      socket.close(CLOSE.goingAway, 'Server shutting down')
      return
    }
    if (socket.protocol !== PROTOCOL) {
      this.#refuse(socket, 'subprotocol', CLOSE.subprotocolNotAcceptable, 'Subprotocol not acceptable')
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
      cutTimer: null,
      callerId: null,
      running: new Set(),
      outcome: null,
      closed: new AbortController(),
      failures: 0,
      rate: new MessageRate(messagesPerSecond),
      queuedBytes: 0
    }
    this.#open.set(socket, connection)
    this.#bySignal.set(connection.closed.signal, { socket, connection })
    this.#watchSent(socket, connection)
    socket.once('close', () => {
      clearTimeout(connection.initTimer ?? undefined)
      clearTimeout(connection.expiryTimer ?? undefined)
      clearTimeout(connection.idleTimer ?? undefined)
      clearTimeout(connection.cutTimer ?? undefined)
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
   * The backlog account of a subscription on the socket whose `closed` signal (Accepted.closed) this is.
   * What waits for a socket is its frames not yet written (ws' bufferedAmount) plus the events still in its
   * subscriptions' queues: mercurius writes one frame per subscription at a time and queues the rest
   * without limit, so a subscriber that stops reading piles them up there.
   */
  backlog (closed: AbortSignal): Backlog {
    const known = this.#bySignal.get(closed)
    if (known === undefined) throw new Error('backlog: not a subscription socket\'s signal')
    const { socket, connection } = known
    return {
      add: (bytes) => {
        if (socket.readyState !== socket.OPEN) return false
        connection.queuedBytes += bytes
        if (this.#withinBacklog(socket, connection)) return true
        connection.queuedBytes -= bytes
        return false
      },
      remove: (bytes) => { connection.queuedBytes -= bytes }
    }
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
      if (socket.readyState === socket.OPEN) this.#withinBacklog(socket, connection)
    }) as WebSocket['send']
  }

  /** Whether the socket's backlog is within SUBSCRIPTIONS_MAX_QUEUED_BYTES; closes it (1013) when not. */
  #withinBacklog (socket: WebSocket, connection: Connection): boolean {
    const queued = socket.bufferedAmount + connection.queuedBytes
    if (queued <= this.#options.maxQueuedBytes) return true
    this.#refuse(socket, 'slow_consumer', CLOSE.tryAgainLater, 'Too slow: too much waiting to be sent')
    // A client that does not read does not take the close frame either (it waits behind the backlog).
    connection.cutTimer = setTimeout(() => { socket.terminate() }, SLOW_CLOSE_GRACE_MS).unref()
    return false
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
   * For mercurius' subscription context (called while it handles `connection_init`): the caller. For a
   * socket refused (and being closed with the refusal's code) it never resolves: mercurius would go on to
   * acknowledge it and start a keep-alive timer (after the socket closed: a timer nothing clears). The
   * pending promise holds nothing but that socket's handler, collected with the socket.
   */
  async caller (socket: WebSocket): Promise<Accepted> {
    const connection = this.#open.get(socket)
    if (connection === undefined) return await never()
    if (connection.outcome === null) {
      // mercurius hears only messages read here, so it cannot have a connection_init this module has not: refuse, should it happen.
      this.#refuse(socket, 'unauthenticated', CLOSE.unauthorized, 'Unauthorized')
      return await never()
    }
    const outcome = await connection.outcome
    if (!outcome.ok || socket.readyState !== socket.OPEN) return await never()
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

  /**
   * A frame from the client: the canonical message's JSON for mercurius, or null when mercurius may not
   * have it (the socket is closing, or is closed for it now).
   */
  #receive (socket: WebSocket, data: unknown, isBinary: boolean): Buffer | null {
    const connection = this.#open.get(socket)
    if (connection === undefined || socket.readyState !== socket.OPEN) return null
    if (!connection.rate.take()) {
      this.#refuse(socket, 'message_rate', CLOSE.policyViolation, 'Too many messages')
      return null
    }
    // The protocol's messages are text: a binary frame is refused rather than read another way.
    if (isBinary || !Buffer.isBuffer(data)) {
      this.#refuse(socket, 'bad_message', CLOSE.badRequest, 'Invalid message: binary frames are not accepted')
      return null
    }
    let message: ClientMessage
    try {
      message = parseClientMessage(data.toString('utf8'))
    } catch (err) {
      if (!(err instanceof BadMessageError)) throw err
      this.#refuse(socket, 'bad_message', CLOSE.badRequest, err.message)
      return null
    }
    if (!this.#accept(socket, connection, message)) return null
    return Buffer.from(serialise(message))
  }

  /** Applies the socket's rules to a message; false when it was refused (the socket is closing). */
  #accept (socket: WebSocket, connection: Connection, message: ClientMessage): boolean {
    switch (message.type) {
      case 'connection_init':
        if (connection.outcome !== null) {
          this.#refuse(socket, 'too_many_inits', CLOSE.tooManyInits, 'Too many initialisation requests')
          return false
        }
        clearTimeout(connection.initTimer ?? undefined)
        connection.initTimer = null
        connection.outcome = this.#authenticate(socket, connection, message.payload)
        return true
      case 'subscribe':
        if (connection.outcome === null) {
          this.#refuse(socket, 'unauthenticated', CLOSE.unauthorized, 'Unauthorized')
          return false
        }
        if (connection.running.has(message.id)) {
          this.#refuse(socket, 'duplicate_id', CLOSE.subscriberExists, `Subscriber for ${message.id} already exists`)
          return false
        }
        this.#started(connection, message.id)
        return true
      case 'complete':
        this.#ended(socket, connection, message.id)
        return true
      default:
        return true // ping, pong
    }
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
    if (connection.closed.signal.aborted || socket.readyState !== socket.OPEN) return { ok: false }
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
    socket.close(code, closeReason(text))
  }
}

/** A promise that never settles, one per waiter (a shared one would keep every waiter for ever). */
async function never (): Promise<never> {
  return await new Promise<never>(() => {})
}

/** `text` cut to what a close frame may carry. */
function closeReason (text: string): string {
  let reason = text
  while (Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) reason = reason.slice(0, -1)
  return reason
}
