// The app factory: builds the service from plugins and the services it is handed.
// No module-level singletons: tests pass fakes, src/server.ts passes the real backends.
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import cors from '@fastify/cors'
import multipart from '@fastify/multipart'
import rateLimit from '@fastify/rate-limit'
import type { Config } from './config.ts'
import { loggerOptions } from './logger.ts'
import type { VisionService } from './vision/types.ts'
import { createImagePipeline, type ImagePipeline } from './image/pipeline.ts'
import limitsPlugin from './limits/plugin.ts'
import { Metrics } from './metrics/registry.ts'
import { countIdentifications } from './identification/metrics.ts'
import { ADAPTIVE_BUDGET_FACTOR } from './identification/adaptive.ts'
import visionPlugin from './vision/plugin.ts'
import azureIdentityPlugin from './azure/plugin.ts'
import { createAzureTokens } from './azure/credential.ts'
import type { AzureTokens } from './azure/tokens.ts'
import { IdentificationEvents } from './identification/events.ts'
import { AccessLog, logIdentifications } from './identification/log.ts'
import metricsPlugin from './metrics/plugin.ts'
import securityHeaders from './security-headers.ts'
import pressurePlugin from './limits/pressure.ts'
import healthPlugin from './health.ts'
import redisPlugin from './redis/plugin.ts'
import workersPlugin from './workers/plugin.ts'
import databasePlugin from './database/plugin.ts'
import historyPlugin from './history/plugin.ts'
import thumbnailsPlugin from './thumbnails/plugin.ts'
import subscriptionsPlugin from './subscriptions/plugin.ts'
import webhooksPlugin from './webhooks/plugin.ts'
import bulkPlugin from './bulk/plugin.ts'
import type { Resolver } from './webhooks/ssrf.ts'
import graphqlPlugin, { PREFLIGHT_HEADERS } from './graphql/plugin.ts'
import graphqlRegistry from './graphql/registry.ts'
import identifyPlugin from './identify/plugin.ts'
import identificationPlugin from './identification/plugin.ts'
import graphiqlPlugin from './graphiql/plugin.ts'
import webAppPlugin from './webapp/plugin.ts'
import callerAuthPlugin from './callers/plugin.ts'

export interface AppOptions {
  config: Config
  vision: VisionService
  /** The image pipeline; made from the config when not given. */
  images?: ImagePipeline
  /** A pino logger to share with the services; otherwise one is made from the config. */
  logger?: FastifyBaseLogger
  /**
   * The process's credential (one per process, one cached token per scope); default: the vision service's, or one
   * made here when something else needs a token (DATABASE_AUTH=entra).
   */
  azureTokens?: AzureTokens | null
  /** Webhooks' host name resolution (SSRF checks) and clock, for tests; dns.lookup and Date.now by default. */
  webhooks?: { resolve?: Resolver, now?: () => number }
}

export async function buildApp (
  { config, vision, images = createImagePipeline(config.images), logger, webhooks, azureTokens }: AppOptions
): Promise<FastifyInstance> {
  const { server } = config
  // One access line per request, with the identification's fields (src/identification/log.ts).
  const accessLog = new AccessLog()
  const app = Fastify({
    ...(logger ? { loggerInstance: logger } : { logger: loggerOptions(server) }),
    logController: accessLog,
    genReqId: (req) => validRequestId(req.headers['x-request-id']) ?? randomUUID(),
    bodyLimit: config.graphql.maxBodyBytes, // JSON bodies (GRAPHQL_MAX_BODY_BYTES); uploads have their own limits
    trustProxy: trustProxyOption(server.trustProxy),
    // A whole request (slow uploads included) must arrive within REQUEST_TIMEOUT_MS; checked every second.
    serverFactory: (handler) => createServer({
      requestTimeout: server.requestTimeoutMs,
      headersTimeout: Math.min(60_000, server.requestTimeoutMs),
      connectionsCheckingInterval: 1000
    }, handler)
  })

  if (server.trustProxy === true) {
    app.log.warn('TRUST_PROXY=true believes any X-Forwarded-For: an anonymous caller can forge its address and reset ' +
      'its per-address limits. Set the number of proxies in front (e.g. TRUST_PROXY=1) or their addresses/CIDRs.')
  }

  const metrics = new Metrics()
  // `app.azureTokens`: one credential, one cached token per scope, for every part that needs one; its metrics.
  const tokens = azureTokens ?? vision.azureTokens ??
    (needsAzureTokens(config) ? createAzureTokens(config.azureIdentity, app.log.child({ component: 'token-provider' })) : null)
  await app.register(azureIdentityPlugin, { tokens, metrics, fallbackStats: () => vision.tokenStats?.() })
  // Vision slots and upload bytes: `app.limits`, with their metrics (src/limits/plugin.ts).
  await app.register(limitsPlugin, {
    overload: config.limits.overload,
    uploadIdleTimeoutMs: config.graphql.uploadIdleTimeoutMs,
    backgroundConcurrency: config.bulk.maxConcurrency, // bulk jobs' lane, beside VISION_MAX_CONCURRENCY
    metrics
  })
  const { admission, uploads } = app.limits
  // `app.vision`: its metrics, warm-up once listening, closed with the app.
  await app.register(visionPlugin, { vision, metrics })
  const events = new IdentificationEvents(app.log)
  countIdentifications(events, metrics)
  logIdentifications(events, app.log, accessLog)
  app.decorate('identificationEvents', events) // capabilities' plugins subscribe here

  // External plugins
  await app.register(securityHeaders)
  await app.register(cors, {
    origin: server.corsOrigins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['content-type', 'authorization', 'x-api-key', 'x-request-id', 'idempotency-key', ...PREFLIGHT_HEADERS],
    exposedHeaders: ['retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-request-id', 'idempotency-replayed'],
    maxAge: 600
  })
  await app.register(multipart)

  const redisEntra = config.redis.entra
  await app.register(redisPlugin, {
    ...config.redis,
    tokens: redisEntra === undefined || app.azureTokens === null ? null : app.azureTokens.forScope(redisEntra.scope, 'redis')
  })

  // skipOnError: if Redis is down, identifications go on (unlimited) rather than all failing.
  await app.register(rateLimit, { global: false, ...(app.redis ? { redis: app.redis, nameSpace: 'agrivision-rl:', skipOnError: true } : {}) })

  // The app's own: the kernel, then the core every feature builds on, then one block per feature.
  // A feature plugs in by registering here, before graphql (it adds its GraphQL part to app.graphqlRegistry).
  await app.register(workersPlugin)

  await app.register(metricsPlugin, { metrics, token: config.metrics.token })

  await app.register(callerAuthPlugin, { auth: config.callers })

  await app.register(graphqlRegistry)

  // Both looks of an ADAPTIVE identification share one budget, longer than one call's (src/identification/adaptive.ts).
  const adaptive = {
    minConfidence: config.images.adaptiveMinConfidence,
    budgetMs: Math.round(config.vision.timeoutMs * ADAPTIVE_BUDGET_FACTOR)
  }
  await app.register(identificationPlugin, { vision, images, events, admission, adaptive })

  await app.register(pressurePlugin, { overload: config.limits.overload, metrics })

  await app.register(healthPlugin, { vision })

  const entraLogin = config.database?.dialect === 'postgres' ? config.database.entra : undefined
  await app.register(databasePlugin, {
    config: config.database,
    ...(entraLogin === undefined || app.azureTokens === null
      ? {}
      : { entra: { tokens: app.azureTokens.forScope(entraLogin.scope, 'database'), tokenTimeoutMs: config.azureIdentity.tokenTimeoutMs } })
  })

  await app.register(historyPlugin, {
    config: config.history,
    production: server.production,
    longestIdentificationMs: server.requestTimeoutMs + config.limits.overload.queueTimeoutMs + adaptive.budgetMs,
    vision,
    events,
    metrics
  })

  await app.register(thumbnailsPlugin, {
    config: config.thumbnails,
    production: server.production,
    operationsPerMinute: config.limits.rates.operationsPerMinute,
    events,
    metrics
  })

  await app.register(subscriptionsPlugin, {
    config: config.subscriptions,
    redisConnections: app.redisConnections,
    production: server.production,
    shutdownGraceMs: server.shutdownGraceMs,
    events,
    metrics
  })

  await app.register(identifyPlugin, { vision, language: config.vision.language, detail: config.images.detail })

  await app.register(webhooksPlugin, { config: config.webhooks, retentionDays: config.history.retentionDays, metrics, events, ...webhooks })

  await app.register(bulkPlugin, {
    config: config.bulk,
    vision,
    production: server.production,
    language: config.vision.language,
    detail: config.images.detail,
    maxUploadBytes: config.graphql.maxUploadBytes,
    retentionDays: config.history.retentionDays,
    maxTokens: config.vision.maxTokens,
    adaptiveMinConfidence: config.images.adaptiveMinConfidence
  })

  if (config.graphql.graphiql) await app.register(graphiqlPlugin)

  if (config.webApp.enabled) await app.register(webAppPlugin, { webApp: config.webApp, auth: config.callers })

  // Last: composes the schema from every part registered above.
  await app.register(graphqlPlugin, {
    graphql: config.graphql,
    rates: config.limits.rates,
    uploads,
    rateLimited: () => { metrics.refusals.inc({ reason: 'rate_limit' }) }
  })

  return app
}

/**
 * A hop count trusts that many proxies in front, whoever they are (Fastify itself refuses a bare
 * number): right only when the service cannot be reached but through them, which the README says.
 */
function trustProxyOption (value: Config['server']['trustProxy']): boolean | string | ((address: string, hop: number) => boolean) {
  return typeof value === 'number' ? (_address, hop) => hop < value : value
}

// Accept a caller's request id for correlation, but only a sane one (it goes into every log line).
function validRequestId (value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && /^[\w.:-]{1,128}$/.test(value) ? value : undefined
}

/** Whether a part other than the vision backend takes a token from the managed identity (DATABASE_AUTH, REDIS_AUTH). */
function needsAzureTokens (config: Config): boolean {
  return (config.database?.dialect === 'postgres' && config.database.entra !== undefined) || config.redis.entra !== undefined
}
