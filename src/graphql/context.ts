// The typed GraphQL context: what every resolver may use, built once per request. It names no feature:
// a feature's resolver reaches its service through its decorator, `ctx.request.server.<feature>`.
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { Caller } from '../callers/caller.ts'
import type { Subscriber } from './registry.ts'
import { clientGone } from './client-gone.ts'

export interface AppContext {
  log: FastifyBaseLogger
  /** Who is calling (anonymous when AUTH_MODE=none). */
  caller: Caller | null
  /** The request's id, as in its log lines. */
  requestId: string
  /** Aborted when the client disconnects before its answer is sent. */
  signal: AbortSignal
  /** True while the process is under memory or event-loop pressure (new identifications are refused). */
  underPressure: () => boolean
  /** The request: its headers, its origin, and `request.server`, where each feature's decorator is. */
  request: FastifyRequest
  /** None on a subscription's socket (the request is its WebSocket upgrade). */
  reply?: FastifyReply
  /** On a subscription's socket: to report a subscription refused (too many close the socket). */
  subscriptionFailed?: () => void
  /**
   * Set before the operation runs: whether running it again repeats nothing but what failed (a query, or a mutation
   * of one field). errors.ts makes a failed field a 503 (which clients retry) only then.
   */
  retrySafe?: boolean
}

declare module 'mercurius' {
  interface MercuriusContext extends AppContext {}
}

export function buildContext () {
  return (request: FastifyRequest, reply: FastifyReply): AppContext => {
    return {
      caller: request.caller,
      requestId: String(request.id),
      log: request.log,
      signal: clientGone(request, reply),
      underPressure: () => request.server.isUnderPressure(),
      request,
      reply
    }
  }
}

/**
 * A subscription connection's context: built once, when its `connection_init` has been verified. The
 * request is the WebSocket upgrade (its host makes thumbnail URLs); there is no reply to set headers on.
 */
export function buildSubscriptionContext () {
  return (request: FastifyRequest, { caller, closed, failed }: Subscriber): Omit<AppContext, 'reply'> => {
    return {
      caller,
      requestId: String(request.id),
      log: caller.kind === 'anonymous' ? request.log : request.log.child({ caller: caller.id, callerKind: caller.kind }),
      signal: closed,
      underPressure: () => request.server.isUnderPressure(),
      request,
      subscriptionFailed: failed
    }
  }
}
