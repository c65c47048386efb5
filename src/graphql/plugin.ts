// POST/GET /graphql: mercurius with our schema, resolvers, error codes, CSRF prevention and uploads.
// Encapsulated (no fastify-plugin): mercurius's error handler and these hooks apply to these routes only.
//
// An identification passes, in order: caller authentication → rate limit (per caller) → admission
// (a slot, or 503 at once when full) → the upload is read → GraphQL. Nothing is read before a slot is held.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import mercurius from 'mercurius'
import type { AppServices } from '../app.ts'
import { AppError } from '../errors.ts'
import { isUploadRequest } from '../limits/requests.ts'
import { buildContext } from './context.ts'
import { clientGone } from './client-gone.ts'
import { formatErrors } from './errors.ts'
import { resolvers } from './resolvers.ts'
import { validationRules } from './rules.ts'
import { loadSchemaSDL } from './schema.ts'
import { readMultipartOperations, type UploadLimits } from './upload.ts'

/** Header names that force a CORS preflight, as upload clients already send them. */
export const PREFLIGHT_HEADERS = [
  'graphql-require-preflight',
  'apollo-require-preflight',
  'x-apollo-operation-name',
  'mercurius-require-preflight',
  'x-mercurius-operation-name'
]

export default async function graphqlPlugin (app: FastifyInstance, services: AppServices): Promise<void> {
  const { config, admission, metrics } = services
  const limits: UploadLimits = { maxFileBytes: config.maxUploadBytes, maxFiles: 1, maxFieldBytes: 64 * 1024 }

  // Who is calling, before anything of the request is read.
  app.addHook('onRequest', app.authenticate)

  // Identifications per caller per minute (identity, else IP).
  app.addHook('onRequest', app.rateLimit({
    max: config.limits.ratePerMinute,
    timeWindow: 60_000,
    allowList: (request) => !isUploadRequest(request),
    keyGenerator: (request) => request.caller && request.caller.kind !== 'anonymous' ? `caller:${request.caller.id}` : `ip:${request.ip}`,
    onExceeded: () => { metrics.refusals.inc({ reason: 'rate_limit' }) },
    errorResponseBuilder: (_request, context) => new AppError('RATE_LIMITED',
      `Too many identifications: at most ${context.max} per minute. Try again in ${context.after}.`,
      { statusCode: 429, extensions: { retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)) } })
  }))

  async function receiveUpload (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!request.isMultipart()) return
    try {
      const release = await admission.acquire(clientGone(request, reply))
      reply.raw.once('close', release)
      if (reply.raw.destroyed) release()
      request.body = await readMultipartOperations(request, limits)
    } catch (err) {
      if (err instanceof AppError && typeof err.extensions.retryAfter === 'number') reply.header('retry-after', String(err.extensions.retryAfter))
      discardRest(request, reply)
      throw err
    }
  }

  await app.register(mercurius, {
    schema: loadSchemaSDL(),
    resolvers,
    path: '/graphql',
    graphiql: false, // ours, self-hosted: see src/graphiql/
    context: buildContext(services),
    allowBatchedQueries: false,
    jit: 1, // compile a query to JS after its first use (graphql-jit): the dashboard sends the same few
    queryDepth: config.limits.maxQueryDepth,
    validationRules: validationRules(config.limits.introspection),
    // Multipart posts need a header a cross-site HTML form cannot send; JSON posts already force a preflight.
    csrfPrevention: { requiredHeaders: PREFLIGHT_HEADERS },
    errorFormatter: (execution, ctx) => formatErrors(execution, ctx.reply?.log ?? ctx.app.log),
    additionalRouteOptions: { preValidation: receiveUpload }
  })
}

// After a refused upload the rest of the body is still arriving: read and drop it, so the client
// gets its answer instead of a stalled connection, and close the connection afterwards.
function discardRest (request: FastifyRequest, reply: FastifyReply): void {
  reply.header('connection', 'close')
  request.raw.unpipe()
  request.raw.resume()
}
