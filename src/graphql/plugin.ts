// POST/GET /graphql: mercurius with our schema, resolvers, error codes, CSRF prevention and uploads;
// and subscriptions over a WebSocket upgrade of GET /graphql (src/subscriptions/: authentication in
// `connection_init`, limits, the channel between instances).
// Encapsulated: mercurius's error handler and these hooks apply to these routes only. It needs
// `app.authenticate` (caller-auth) and `app.rateLimit` (@fastify/rate-limit), and says so. The schema is
// composed from the parts features registered in `app.graphqlRegistry` (./registry.ts) before this plugin.
//
// An identification passes, in order: caller authentication → rate limit (per caller) → the upload's
// bytes reserved (per caller and in total, or 429/503 at once) → the upload is read (bounded by the idle
// timeout and the minimum rate) → GraphQL → the identification flow, which takes a vision slot for the
// work (src/identification/flow.ts). Receiving a body holds no slot.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import mercurius, { type IResolvers } from 'mercurius'
import { specifiedRules, validate } from 'graphql'
import type { AppServices } from '../services.ts'
import { RateLimitedError } from '../errors.ts'
import type { Release } from '../limits/admission.ts'
import { callerKey, isUploadRequest } from '../http/requests.ts'
import { buildContext, buildSubscriptionContext } from './context.ts'
import { checkGetOperation } from './get-requests.ts'
import { formatErrors } from './errors.ts'
import { checkHttpOperation } from './http-subscriptions.ts'
import { checkStorableArguments } from './storable-arguments.ts'
import { resolvers } from './resolvers.ts'
import { mergeResolvers } from './registry.ts'
import { checkOperationCost, validationRules, type OperationLimits } from './rules.ts'
import { loadSchemaSDL } from './schema.ts'
import { readMultipartOperations, uploadCharge, type UploadLimits } from './upload.ts'
import { UploadBuffers } from './upload-buffers.ts'

/** Header names that force a CORS preflight, as upload clients already send them. */
export const PREFLIGHT_HEADERS = [
  'graphql-require-preflight',
  'apollo-require-preflight',
  'x-apollo-operation-name',
  'mercurius-require-preflight',
  'x-mercurius-operation-name'
]

async function graphqlPlugin (app: FastifyInstance, services: AppServices): Promise<void> {
  const { config, uploads, metrics } = services
  const limits: UploadLimits = {
    maxFileBytes: config.maxUploadBytes,
    maxFiles: 1,
    maxFieldBytes: 64 * 1024,
    idleTimeoutMs: config.uploadIdleTimeoutMs,
    minBytesPerSecond: config.uploadMinBytesPerSecond,
    buffers: new UploadBuffers() // reused across uploads (upload-buffers.ts)
  }
  const operationLimits: OperationLimits = { maxFields: config.limits.maxQueryFields, maxDepth: config.limits.maxQueryDepth }

  // Who is calling, before anything of the request is read (a WebSocket upgrade: in its connection_init).
  app.addHook('onRequest', app.authenticate)
  // mercurius' CSRF check wants a preflight header on every GET, which a browser's WebSocket cannot send.
  // An upgrade is no forgery risk here: nothing ambient (no cookie) authenticates it; its credentials come
  // in connection_init. So an upgrade (`ws`: set by @fastify/websocket, never from a header) passes as preflighted.
  app.addHook('onRequest', async (request) => {
    if (request.ws) request.headers['graphql-require-preflight'] ??= 'websocket'
  })

  // Two budgets per caller (identity, else IP) per minute: identifications, and every other operation.
  // One hook: @fastify/rate-limit runs at most one limiter per request. A budget of 0 is no limit.
  const { ratePerMinute, operationsPerMinute } = config.limits
  const budget = (request: FastifyRequest): number => isUploadRequest(request) ? ratePerMinute : operationsPerMinute
  app.addHook('onRequest', app.rateLimit({
    max: (request) => budget(request),
    timeWindow: 60_000,
    allowList: (request) => budget(request) === 0,
    keyGenerator: (request) => `${isUploadRequest(request) ? 'identify' : 'operation'}:${callerKey(request)}`,
    onExceeded: () => { metrics.refusals.inc({ reason: 'rate_limit' }) },
    errorResponseBuilder: (request, context) => new RateLimitedError(
      `Too many ${isUploadRequest(request) ? 'identifications' : 'GraphQL requests'}: at most ${context.max} per minute. Try again in ${context.after}.`,
      Math.max(1, Math.ceil(context.ttl / 1000)))
  }))

  async function checkGet (request: FastifyRequest): Promise<void> {
    checkGetOperation(request, config.limits.maxQueryTokens)
  }

  // The body is read here, holding its bytes' reservation (not a vision slot) until the request ends:
  // the upload's buffer lives as long as the request, through the wait for a slot and the work.
  async function receiveUpload (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!request.isMultipart()) return
    let release: Release | undefined
    try {
      release = uploads.reserve(callerKey(request), uploadCharge(request.headers['content-length'], limits))
      reply.raw.once('close', release)
      if (reply.raw.destroyed) release()
      request.body = await readMultipartOperations(request, limits)
    } catch (err) {
      release?.() // a refused or stalled upload gives its bytes back now, not when its connection closes
      discardRest(request, reply)
      throw err
    }
  }

  const { parts, subscriptions } = app.graphqlRegistry.compose()
  await app.register(mercurius, {
    schema: [loadSchemaSDL(), ...parts.flatMap(part => part.sdl ?? [])].join('\n'),
    resolvers: mergeResolvers([{ name: 'graphql', resolvers: resolvers as IResolvers }, ...parts]),
    path: '/graphql',
    graphiql: false, // ours, self-hosted: see src/graphiql/
    context: buildContext(services),
    allowBatchedQueries: false,
    jit: 1, // compile a query to JS after its first use (graphql-jit): the dashboard sends the same few
    // Parsed documents (and failed ones, in a second cache) are kept by source text. Each holds at most
    // GRAPHQL_MAX_TOKENS tokens (~320 bytes each parsed), so the caches hold at most 2 × 64 × that.
    cache: PARSED_DOCUMENT_CACHE_ENTRIES,
    graphql: { parseOptions: { maxTokens: config.limits.maxQueryTokens } },
    validationRules: validationRules(config.limits.introspection),
    // Multipart posts need a header a cross-site HTML form cannot send; JSON posts already force a preflight.
    csrfPrevention: { requiredHeaders: PREFLIGHT_HEADERS },
    errorFormatter: (execution, ctx) => formatErrors(execution, ctx.reply?.log ?? ctx.app.log, ctx.reply, ctx.retrySafe ?? true),
    additionalRouteOptions: { preValidation: [checkGet, receiveUpload] },
    subscription: subscriptions?.mercuriusOptions(buildSubscriptionContext(services)) ?? false
  })
  // Runs on documents not in the cache, before graphql-js validates them.
  app.graphql.addHook('preValidation', async (_schema, document) => { checkOperationCost(document, operationLimits) })
  // Every execution (cached documents too), with its variables: no argument holds text that cannot be stored.
  app.graphql.addHook('preExecution', async (_schema, document, context, variables) => {
    context.retrySafe = checkHttpOperation(document, context.reply?.request).retrySafe
    checkStorableArguments(document, variables as Record<string, unknown> | undefined)
  })
  // mercurius runs a subscription's document unvalidated: the same bounds and rules as any other first.
  const rules = [...specifiedRules, ...validationRules(config.limits.introspection)]
  app.graphql.addHook('preSubscriptionExecution', async (schema, document, context) => {
    try {
      checkOperationCost(document, operationLimits)
      const errors = validate(schema, document, rules)
      if (errors.length > 0) throw errors[0]
    } catch (err) {
      context.subscriptionFailed?.()
      throw err
    }
  })
  subscriptions?.publishTo(app.graphql.pubsub)
}

export default fp(graphqlPlugin, {
  name: 'graphql',
  fastify: '5.x',
  encapsulate: true,
  dependencies: ['caller-auth', '@fastify/rate-limit', '@fastify/multipart', 'graphql-registry']
})

const PARSED_DOCUMENT_CACHE_ENTRIES = 64

// After a refused upload the rest of the body is still arriving: read and drop it, so the client
// gets its answer instead of a stalled connection, and close the connection afterwards.
function discardRest (request: FastifyRequest, reply: FastifyReply): void {
  reply.header('connection', 'close')
  request.raw.unpipe()
  request.raw.resume()
}
