// POST/GET /graphql: mercurius with the composed schema, error codes, CSRF prevention, query limits and
// uploads; and subscriptions over a WebSocket upgrade of GET /graphql when a feature hands in their
// transport (src/subscriptions/: authentication in `connection_init`, limits, the channel between instances).
// Encapsulated: mercurius's error handler and these hooks apply to these routes only. It needs
// `app.authenticate` (caller-auth) and `app.rateLimit` (@fastify/rate-limit), and says so. The schema is
// the core's SDL (the scalars, beside this file) and the parts features registered in `app.graphqlRegistry`
// (./registry.ts) before this plugin; every .graphql file must be in it (checked at start-up).
//
// An identification passes, in order: caller authentication → rate limit (per caller) → the upload's
// bytes reserved (per caller and in total, or 429/503 at once) → the upload is read (bounded by the idle
// timeout and the minimum rate) → GraphQL → the identification flow, which takes a vision slot for the
// work (src/identification/flow.ts). Receiving a body holds no slot.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import mercurius, { type IResolvers } from 'mercurius'
import { specifiedRules, validate } from 'graphql'
import { RateLimitedError } from '../errors.ts'
import { callerKey, isUploadRequest } from '../http/requests.ts'
import type { GraphqlConfig } from './config.ts'
import { buildContext, buildSubscriptionContext } from './context.ts'
import { checkGetOperation } from './get-requests.ts'
import { formatErrors } from './errors.ts'
import { checkHttpOperation } from './http-subscriptions.ts'
import { checkStorableArguments, type CheckedDocuments } from './storable-arguments.ts'
import { resolvers } from './resolvers.ts'
import { mergeResolvers } from './registry.ts'
import { checkOperationCost, validationRules, type OperationLimits } from './rules.ts'
import { schemaFiles } from './schema.ts'
import { MIN_UPLOAD_CHARGE, readMultipartOperations, uploadCharge, type FileLimits, type StoredFile, type UploadLimits } from './upload.ts'
import { createPolicySelector } from './upload-policy.ts'
import type { UploadPolicy } from './registry.ts'
import { UploadBuffers } from './upload-buffers.ts'

/** Header names that force a CORS preflight, as upload clients already send them. */
export const PREFLIGHT_HEADERS = [
  'graphql-require-preflight',
  'apollo-require-preflight',
  'x-apollo-operation-name',
  'mercurius-require-preflight',
  'x-mercurius-operation-name'
]

export interface GraphqlOptions {
  /** What one operation and one upload may cost (GRAPHQL_*, MAX_UPLOAD_BYTES, UPLOAD_*). */
  graphql: Omit<GraphqlConfig, 'graphiql' | 'maxBodyBytes'>
  /** Per caller and minute: identifications (a multipart upload) and every other operation; 0 is no limit. */
  rates: { ratePerMinute: number, operationsPerMinute: number }
  /** Upload bytes in flight (src/limits/receiving.ts): reserved before a body is read, or refused. */
  uploads: UploadReservations
  /** Told of each request the rate limit refuses (a metric). */
  rateLimited?: () => void
}

/** Reserves an upload's bytes for a caller, or throws (429/503); the function returned gives them back. */
export interface UploadReservations {
  reserve (caller: string, bytes: number): () => void
}

async function graphqlPlugin (app: FastifyInstance, options: GraphqlOptions): Promise<void> {
  const { graphql: config, rates, uploads } = options
  const limits: UploadLimits = {
    maxFileBytes: config.maxUploadBytes,
    maxFiles: 1,
    maxFieldBytes: 64 * 1024,
    idleTimeoutMs: config.uploadIdleTimeoutMs,
    minBytesPerSecond: config.uploadMinBytesPerSecond,
    buffers: new UploadBuffers(), // reused across uploads (upload-buffers.ts)
    bufferBodiesUpTo: config.maxUploadBytes
  }
  const operationLimits: OperationLimits = { maxFields: config.maxQueryFields, maxDepth: config.maxQueryDepth }

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
  const { ratePerMinute, operationsPerMinute } = rates
  const budget = (request: FastifyRequest): number => isUploadRequest(request) ? ratePerMinute : operationsPerMinute
  app.addHook('onRequest', app.rateLimit({
    max: (request) => budget(request),
    timeWindow: 60_000,
    allowList: (request) => budget(request) === 0,
    keyGenerator: (request) => `${isUploadRequest(request) ? 'identify' : 'operation'}:${callerKey(request)}`,
    onExceeded: () => { options.rateLimited?.() },
    errorResponseBuilder: (request, context) => new RateLimitedError(
      `Too many ${isUploadRequest(request) ? 'identifications' : 'GraphQL requests'}: at most ${context.max} per minute. Try again in ${context.after}.`,
      Math.max(1, Math.ceil(context.ttl / 1000)))
  }))

  async function checkGet (request: FastifyRequest): Promise<void> {
    checkGetOperation(request, config.maxQueryTokens)
  }

  // The body is read here, holding its bytes' reservation (not a vision slot) until the request ends:
  // the upload's buffer lives as long as the request, through the wait for a slot and the work.
  // An upload policy's mutation (src/graphql/registry.ts) may take more or larger files, or send them to disk: the
  // parser's own limits are the largest any policy allows; each request's are its policy's, once `operations` is read.
  async function receiveUpload (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!request.isMultipart()) return
    const held: Array<() => void> = []
    const releaseAll = (): void => { for (const release of held.splice(0)) release() }
    const stored: StoredFile[] = []
    try {
      const key = callerKey(request)
      let reservation = uploads.reserve(key, uploadCharge(request.headers['content-length'], limits))
      held.push(() => { reservation() })
      reply.raw.once('close', () => {
        releaseAll()
        for (const file of stored) file.discard() // what the resolver did not take goes with the request
      })
      if (reply.raw.destroyed) releaseAll()
      const select = async (operations: Record<string, unknown>): Promise<FileLimits> => {
        const policy = selectPolicy(operations)
        if (policy === undefined) return { maxFiles: limits.maxFiles, maxFileBytes: limits.maxFileBytes, sink: 'memory' }
        if (policy.sink !== 'memory') {
          // Files to disk hold no memory: the request keeps only its framing's share of the bytes in flight.
          reservation()
          reservation = uploads.reserve(key, MIN_UPLOAD_CHARGE)
        }
        if (policy.admit !== undefined) {
          const declared = Number(request.headers['content-length'])
          held.push(await policy.admit(request, Number.isSafeInteger(declared) && declared >= 0 ? declared : null))
          if (reply.raw.destroyed) releaseAll() // the client went away meanwhile: its close has been seen already
        }
        return { maxFiles: policy.maxFiles, maxFileBytes: policy.maxFileBytes, sink: policy.sink }
      }
      request.body = await readMultipartOperations(request, { ...parserLimits, select }, stored)
    } catch (err) {
      releaseAll() // a refused or stalled upload gives its bytes back now, not when its connection closes
      discardRest(request, reply)
      throw err
    }
  }

  const composed = app.graphqlRegistry.compose()
  const { subscriptions, uploadPolicies } = composed
  // In the order of their .graphql files (sorted by path; a part is named as its folder), whatever the order the
  // features registered in: a type's fields, extensions included, come in the order the SDL files give them.
  const parts = [...composed.parts].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  const policies = new Map<string, UploadPolicy>(uploadPolicies.map(policy => [policy.field, policy]))
  const selectPolicy = createPolicySelector(policies, config.maxQueryTokens)
  const parserLimits: UploadLimits = {
    ...limits,
    maxFiles: Math.max(limits.maxFiles, ...uploadPolicies.map(p => p.maxFiles)),
    maxFileBytes: Math.max(limits.maxFileBytes, ...uploadPolicies.map(p => p.maxFileBytes)),
    // A body no larger than the smallest file limit cannot carry a file over its limit: it is read whole, then split
    // (buffered-multipart.ts: an identification's photo). A larger one streams through busboy, which refuses an
    // oversize file as soon as it crosses the limit, even from a client that then stalls.
    bufferBodiesUpTo: Math.min(limits.maxFileBytes, ...uploadPolicies.map(p => p.maxFileBytes)),
    // An upload policy's mutation admits its request, or sends its files to disk, before they arrive: it streams.
    bufferable: operations => selectPolicy(operations) === undefined
  }
  const core = { name: 'graphql', sdl: coreSchemaSDL().join('\n'), resolvers: resolvers as IResolvers }
  const sdl = [core, ...parts].flatMap(part => part.sdl ?? [])
  checkEveryFileComposed(sdl)
  await app.register(mercurius, {
    schema: sdl.join('\n'),
    resolvers: mergeResolvers([core, ...parts]),
    path: '/graphql',
    graphiql: false, // ours, self-hosted: see src/graphiql/
    context: buildContext(),
    allowBatchedQueries: false,
    jit: 1, // compile a query to JS after its first use (graphql-jit): the dashboard sends the same few
    // Parsed documents (and failed ones, in a second cache) are kept by source text. Each holds at most
    // GRAPHQL_MAX_TOKENS tokens (~320 bytes each parsed), so the caches hold at most 2 × 64 × that.
    cache: PARSED_DOCUMENT_CACHE_ENTRIES,
    graphql: { parseOptions: { maxTokens: config.maxQueryTokens } },
    validationRules: validationRules(config.introspection),
    // Multipart posts need a header a cross-site HTML form cannot send; JSON posts already force a preflight.
    csrfPrevention: { requiredHeaders: PREFLIGHT_HEADERS },
    errorFormatter: (execution, ctx) => formatErrors(execution, ctx.reply?.log ?? ctx.app.log, ctx.reply, ctx.retrySafe ?? true),
    additionalRouteOptions: { preValidation: [checkGet, receiveUpload] },
    subscription: subscriptions?.mercuriusOptions(buildSubscriptionContext()) ?? false
  })
  // Runs on documents not in the cache, before graphql-js validates them.
  app.graphql.addHook('preValidation', async (_schema, document) => { checkOperationCost(document, operationLimits) })
  // Every execution (cached documents too), with its variables: no argument holds text that cannot be stored.
  const storableDocuments: CheckedDocuments = new WeakSet()
  app.graphql.addHook('preExecution', async (_schema, document, context, variables) => {
    context.retrySafe = checkHttpOperation(document, context.reply?.request).retrySafe
    checkStorableArguments(document, variables as Record<string, unknown> | undefined, storableDocuments)
  })
  // mercurius runs a subscription's document unvalidated: the same bounds and rules as any other first.
  const rules = [...specifiedRules, ...validationRules(config.introspection)]
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

/** The core's own SDL: the .graphql files beside this module (the scalars, the error codes). */
function coreSchemaSDL (): string[] {
  const path = fileURLToPath(new URL('./', import.meta.url)) // not .pathname: that one is percent-encoded
  return readdirSync(path).filter(name => name.endsWith('.graphql')).sort().map(name => readFileSync(join(path, name), 'utf8'))
}

/**
 * Every .graphql file of the service (./schema.ts: what codegen reads too) is in the schema served: a
 * feature that forgot to register its part, or registers it only when enabled, would otherwise change the
 * API without a word (the schema is the same whatever is switched off).
 */
function checkEveryFileComposed (sdl: readonly string[]): void {
  const missing = sdlNotComposed(schemaFiles(), sdl)
  if (missing.length > 0) {
    throw new Error(`GraphQL SDL that no part hands in: ${missing.join(', ')}. A feature registers its .graphql with app.graphqlRegistry.add, enabled or not.`)
  }
}

/** Which of `files` no text of `sdl` contains. */
export function sdlNotComposed (files: readonly string[], sdl: readonly string[]): string[] {
  return files.filter(file => {
    const text = readFileSync(file, 'utf8')
    return !sdl.some(part => part.includes(text))
  })
}
