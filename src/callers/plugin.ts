// Caller authentication (AUTH_MODE) on the GraphQL routes: `app.authenticate`, an onRequest hook (so
// nothing is read from an unauthenticated upload), sets `request.caller`. It only reads credentials,
// asks the verifier (verify.ts) and logs; the refusal's status and headers (WWW-Authenticate, Retry-After)
// come from src/graphql/errors.ts like every other error. /health/* does not use it.
//
// Credentials are never taken from the URL: a request whose query string carries a credential-looking
// parameter (`api_key`, `x-api-key`, `access_token`, `token`, `code`, `client_secret`, ..., or any value
// shaped like one of our API keys or a JWT) is refused with 400 BAD_REQUEST, in every mode, whatever
// its headers say: a URL ends up in proxy, browser and server logs (ours log query values redacted,
// src/logger.ts), so the credential must be treated as leaked, and the client should hear so at once.
//
// A WebSocket upgrade (GraphQL subscriptions) is let through unauthenticated, its URL checked all the same:
// browsers cannot put headers on one, so its credentials come in `connection_init`, checked by src/subscriptions/
// with the same verifier (`app.verifyCaller`).
//
// The caller's id and kind go into every later log line of the request; the token or key never does.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { AppError, BadRequestError, ForbiddenError } from '../errors.ts'
import type { Caller } from './caller.ts'
import type { CallersConfig } from './config.ts'
import { credentialInQuery } from './query-credentials.ts'
import { createCallerVerifier, credentialsFromHeaders, type CallerVerifier } from './verify.ts'

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller | null
  }
  interface FastifyInstance {
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** The verifier `authenticate` uses, for credentials that come another way (a WebSocket's `connection_init`). */
    verifyCaller: CallerVerifier
  }
}

export interface CallerAuthOptions {
  auth: CallersConfig
}

async function callerAuth (app: FastifyInstance, { auth }: CallerAuthOptions): Promise<void> {
  app.decorateRequest('caller', null)
  const verify = createCallerVerifier(auth, app.log)
  app.decorate('verifyCaller', verify)

  function identified (request: FastifyRequest, reply: FastifyReply, caller: { id: string, kind: string }): void {
    if (caller.kind === 'anonymous') return // nothing to add, and a child logger costs on every request
    const log = request.log.child({ caller: caller.id, callerKind: caller.kind })
    request.log = log
    reply.log = log // Fastify's "request completed" line and mercurius's error logs use reply.log
  }

  app.decorate('authenticate', async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      const inUrl = credentialInQuery(request.url)
      if (inUrl !== null) {
        throw new BadRequestError(`Credentials are not accepted in the URL (${inUrl}). ` +
          'Send them in a header instead: "Authorization: Bearer <token>" or "x-api-key: <key>"; and treat this one as leaked (URLs are logged by proxies and browsers): revoke or rotate it.')
      }
      // `ws`: set by @fastify/websocket on a request that came as an upgrade (and only on such; not from a header).
      if ((request as { ws?: boolean }).ws === true) return
      const caller = await verify(credentialsFromHeaders(request.headers))
      identified(request, reply, caller)
      request.caller = caller
    } catch (err) {
      if (err instanceof ForbiddenError && err.caller) identified(request, reply, err.caller)
      if (err instanceof AppError && err.code !== 'AUTH_UNAVAILABLE') {
        request.log.info({ code: err.code, reason: err.message, detail: err.cause instanceof Error ? err.cause.message : undefined }, 'caller refused')
      }
      throw err
    }
  })
}

export default fp(callerAuth, { name: 'caller-auth', fastify: '5.x' })
