// Caller authentication (AUTH_MODE): who is calling, and may they? Decorates `request.caller` and
// `app.authenticate`, an onRequest hook the GraphQL routes use (so nothing is read from an
// unauthenticated upload). /health/* does not use it.
// STUB: to be implemented (Entra ID bearer tokens verified with jose; API keys by SHA-256).
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.ts'

export interface Caller {
  /** How the caller proved who it is. */
  kind: 'entra-user' | 'entra-app' | 'apikey' | 'anonymous'
  /** A stable id for logs and rate limits: the Entra oid/appid, or the API key's id. Never a secret. */
  id: string
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller | null
  }
  interface FastifyInstance {
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

export interface CallerAuthOptions {
  auth: Config['auth']
}

async function callerAuth (app: FastifyInstance, { auth }: CallerAuthOptions): Promise<void> {
  app.decorateRequest('caller', null)
  app.decorate('authenticate', async function authenticate (request: FastifyRequest): Promise<void> {
    if (auth.modes.length === 0) {
      request.caller = { kind: 'anonymous', id: 'anonymous' }
    }
  })
}

export default fp(callerAuth, { name: 'caller-auth', fastify: '5.x' })
