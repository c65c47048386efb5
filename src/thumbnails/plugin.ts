// Thumbnails as a capability: the maker subscribes to completed identifications and stores a small
// JPEG of each (off the request path, skipped under load), and `GET /thumbnails/<id>.jpg?expires=…&signature=…`
// serves it to whoever holds a valid signed URL: no caller authentication here (a browser's <img src>
// sends no Authorization header), the signature is the authorization. `app.thumbnails.url(request, identification)`
// makes such a URL for the resolver. With HISTORY=off there is nowhere to keep thumbnails: `app.thumbnails` is null.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { IdentificationEvents } from '../identification/events.ts'
import type { Metrics } from '../metrics/registry.ts'
import type { ThumbnailsConfig } from './config.ts'
import { AppError, ForbiddenError, NotFoundError, RateLimitedError } from '../errors.ts'
import { sendError } from '../http/send-error.ts'
import { ThumbnailMaker } from './maker.ts'
import { thumbnailProcess } from './low-priority.ts'
import { eventLoopBusy } from './busy.ts'
import { createUrlSigner, MAX_THUMBNAIL_URL_LENGTH, THUMBNAIL_PATH_PREFIX } from './signing.ts'
import type { Thumbnails } from './public.ts'
import { thumbnailsGraphql } from './graphql.ts'
import { thumbnailMetrics } from './metrics.ts'

export type { Thumbnails }

export interface ThumbnailsPluginOptions {
  config: ThumbnailsConfig
  production: boolean
  /** Valid thumbnail URLs served per client address per minute (GRAPHQL_RATE_LIMIT_PER_MINUTE; 0: no limit). */
  operationsPerMinute: number
  events: IdentificationEvents
  metrics: Metrics
  /** The clock URLs are signed and checked by (tests); Date.now by default. */
  now?: () => number
}

/** How long closing waits for queued thumbnails. */
const SHUTDOWN_DRAIN_MS = 5_000
/** How long a thumbnail waits for its history record to be written before saving anyway. */
const RECORD_WAIT_MS = 2_000
/** A Host header fit to put in a URL (a name or address, and a port). */
const HOST = /^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$/

async function thumbnailsPlugin (app: FastifyInstance, options: ThumbnailsPluginOptions): Promise<void> {
  const { config, production, events, metrics, now } = options
  const results = thumbnailMetrics(metrics)
  app.graphqlRegistry.add(thumbnailsGraphql)
  const history = app.history
  if (history === null) {
    app.decorate('thumbnails', null)
    return
  }
  const log = app.log.child({ component: 'thumbnails' })
  const signer = createUrlSigner({ key: config.signingKey, ttlSeconds: config.urlTtlSeconds, now })
  if (signer.ephemeralKey) {
    log.warn(production
      ? 'URL_SIGNING_KEY is not set: thumbnail URLs are signed with a random key and work only on the instance that signed them, ' +
        'until it restarts. Set URL_SIGNING_KEY (at least 32 characters, the same on every instance).'
      : 'URL_SIGNING_KEY is not set: thumbnail URLs work only on this instance, until it restarts.')
  }

  const child = thumbnailProcess()
  const maker = new ThumbnailMaker({
    ...(config.priority === 'low' ? { make: async (image: Buffer) => await child.make(image) } : {}),
    save: async (id, jpeg, createdAt) => { await history.saveThumbnail(id, jpeg, createdAt) },
    // The record first, so that saving marks it as having a thumbnail (not for ever: the database may be down).
    beforeSave: async () => {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([history.flushed(), new Promise<void>(resolve => { timer = setTimeout(resolve, RECORD_WAIT_MS) })])
      clearTimeout(timer)
    },
    log,
    counts: {
      made: () => results.inc({ result: 'made' }),
      skipped: () => results.inc({ result: 'skipped' }),
      failed: () => results.inc({ result: 'failed' })
    }
  })
  metrics.gauge('agrivision_thumbnails_queued', 'Thumbnails waiting to be made.', () => maker.waiting)
  // A cached answer is a new record too: it gets its own thumbnail, from its own image.
  // Skipped, not queued, while the event loop is this busy: identifications come first.
  const load = eventLoopBusy(config.skipAboveUtilisation)
  events.on('completed', event => {
    if (load.busy()) { results.inc({ result: 'skipped' }); return }
    maker.offer({ id: event.id, image: event.sentImage, createdAt: event.identification.createdAt })
  })
  app.workers.register({
    name: 'thumbnails',
    start: () => {},
    stop: async () => {
      load.stop()
      await maker.stop(SHUTDOWN_DRAIN_MS)
      await child.close()
    }
  })

  app.decorate('thumbnails', {
    maker,
    signer,
    process: child,
    url (request, identification) {
      if (identification.hasThumbnail !== true) return null
      const { path } = signer.sign(identification.id)
      const host = request.host
      return HOST.test(host) ? `${request.protocol}://${host}${path}` : path
    }
  } satisfies Thumbnails)

  // Each valid URL costs a database read: per client address, as many a minute as other GraphQL requests
  // (GRAPHQL_RATE_LIMIT_PER_MINUTE; 0: no limit). Keyed by address: the route has no caller.
  const perMinute = options.operationsPerMinute
  const rateLimit = app.rateLimit({
    max: perMinute,
    timeWindow: 60_000,
    allowList: () => perMinute === 0,
    keyGenerator: (request) => `thumbnail:${request.ip}`,
    onExceeded: () => { metrics.refusals.inc({ reason: 'rate_limit' }) },
    errorResponseBuilder: (_request, context) => new RateLimitedError(
      `Too many thumbnail requests: at most ${context.max} per minute. Try again in ${context.after}.`, Math.max(1, Math.ceil(context.ttl / 1000)))
  })

  // A wildcard, not `:file`: an over-long name is ours to refuse (403), not the router's (414).
  app.get(`${THUMBNAIL_PATH_PREFIX}*`, {
    onRequest: rateLimit,
    // The rate limit's 429 (thrown by its hook) in the catalogue's shape, with Retry-After.
    errorHandler: async (err, _request, reply) => err instanceof AppError ? sendError(reply, err) : await reply.send(err)
  }, async (request, reply) => {
    const file = (request.params as Record<string, string | undefined>)['*'] ?? ''
    const checked = request.url.length > MAX_THUMBNAIL_URL_LENGTH
      ? { ok: false as const, reason: 'malformed' as const }
      : signer.verify(file, request.query)
    if (!checked.ok) {
      request.log.info({ reason: checked.reason }, 'thumbnail URL refused') // the reason only: never the signature
      // Not a caller's credentials but the URL's: no WWW-Authenticate challenge.
      return await sendError(reply, new ForbiddenError('This thumbnail URL is not valid (expired, altered or malformed). ' +
        'Ask for the identification again for a new one.'))
    }
    let jpeg: Buffer | undefined
    try {
      jpeg = await history.getThumbnail(checked.id)
    } catch (err) {
      if (err instanceof AppError) return await sendError(reply, err) // STORAGE_UNAVAILABLE (503), logged by app.database
      throw err
    }
    if (jpeg === undefined) {
      return await sendError(reply, new NotFoundError('There is no thumbnail for this identification (it was deleted, or none was made).'))
    }
    return await reply
      .header('content-type', 'image/jpeg')
      .header('cache-control', `private, max-age=${signer.secondsLeft(checked.expires)}`)
      .header('x-content-type-options', 'nosniff')
      // For <img src> on the dashboard's own origin: the signed URL, not the origin, is what grants access.
      .header('cross-origin-resource-policy', 'cross-origin')
      .send(jpeg)
  })
}

export default fp(thumbnailsPlugin, { name: 'thumbnails', fastify: '5.x', dependencies: ['history', 'workers', 'graphql-registry'] })
