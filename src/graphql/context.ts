// The typed GraphQL context: what every resolver may use, built once per request.
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { AppServices } from '../services.ts'
import type { Caller } from '../callers/caller.ts'
import type { History } from '../history/public.ts'
import type { Subscriber } from './registry.ts'
import { clientGone } from './client-gone.ts'

export interface AppContext extends AppServices {
  log: FastifyBaseLogger
  /** Who is calling (anonymous when AUTH_MODE=none). */
  caller: Caller | null
  /** The request's id, as in its log lines. */
  requestId: string
  /** Aborted when the client disconnects before its answer is sent. */
  signal: AbortSignal
  /** True while the process is under memory or event-loop pressure (new identifications are refused). */
  underPressure: () => boolean
  /** The identification history; null when HISTORY=off. */
  history: History | null
  /** The request, for what only it knows (the origin thumbnail URLs are made for, the Idempotency-Key header). */
  request: FastifyRequest
  reply: FastifyReply
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

export function buildContext (services: AppServices) {
  return (request: FastifyRequest, reply: FastifyReply): AppContext => {
    return {
      ...services,
      caller: request.caller,
      requestId: String(request.id),
      log: request.log,
      signal: clientGone(request, reply),
      underPressure: () => request.server.isUnderPressure(),
      history: request.server.history,
      request,
      reply
    }
  }
}

/**
 * A subscription connection's context: built once, when its `connection_init` has been verified. The
 * request is the WebSocket upgrade (its host makes thumbnail URLs); there is no reply to set headers on.
 */
export function buildSubscriptionContext (services: AppServices) {
  return (request: FastifyRequest, { caller, closed, failed }: Subscriber): Omit<AppContext, 'reply'> => {
    return {
      ...services,
      caller,
      requestId: String(request.id),
      log: caller.kind === 'anonymous' ? request.log : request.log.child({ caller: caller.id, callerKind: caller.kind }),
      signal: closed,
      underPressure: () => request.server.isUnderPressure(),
      history: request.server.history,
      request,
      subscriptionFailed: failed
    }
  }
}
