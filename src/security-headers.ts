// Security headers (helmet), with a content security policy under which the self-hosted GraphiQL
// works (`script-src 'self'`). helmet's middleware is built once here: @fastify/helmet rebuilds it,
// CSP parsing included, on every request, which showed as ~2 % of the request path when profiled.
// The GraphQL endpoint answers JSON, never a document: the dozen document headers (CSP, frame and
// cross-origin policies) protect nothing there and cost on every identification, so it gets
// `nosniff` (no JSON rendered as HTML) and `no-store` (answers are per request) only.
import fp from 'fastify-plugin'
import helmet from 'helmet'
import type { FastifyInstance } from 'fastify'

export const CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'", "'unsafe-inline'"], // GraphiQL sets inline styles
  imgSrc: ["'self'", 'data:'],
  fontSrc: ["'self'"],
  connectSrc: ["'self'"],
  frameAncestors: ["'none'"]
}

async function securityHeaders (app: FastifyInstance): Promise<void> {
  const apply = helmet({ contentSecurityPolicy: { directives: CONTENT_SECURITY_POLICY } })
  app.addHook('onRequest', (request, reply, done) => {
    if (request.routeOptions.url === '/graphql') {
      reply.raw.setHeader('x-content-type-options', 'nosniff')
      reply.raw.setHeader('cache-control', 'no-store')
      return done()
    }
    apply(request.raw, reply.raw, (err?: unknown) => done(err as Error | undefined))
  })
}

export default fp(securityHeaders, { name: 'security-headers', fastify: '5.x' })
