// Webhooks as a feature: endpoint management (`app.webhooks`, typed in ./public.ts), the GraphQL part
// (./graphql.ts), and the delivery worker (registered with app.workers) that sends what the outbox holds:
// rows written in history's record transaction. Needs history; with HISTORY=off `app.webhooks` is null
// (the GraphQL part is registered all the same: the schema does not change).
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { BadUserInputError, InvalidWebhookUrlError } from '../errors.ts'
import type { IdentificationEvents } from '../identification/events.ts'
import type { Metrics } from '../metrics/registry.ts'
import type { WebhooksConfig } from './config.ts'
import { webhooksGraphql } from './graphql.ts'
import { webhookMetrics } from './metrics.ts'
import type { WebhookEvents, Webhooks } from './public.ts'
import { newSecret } from './signing.ts'
import { checkEndpointUrl, systemResolver, UrlRefused, type Resolver } from './ssrf.ts'
import { WebhookStore } from './store.ts'
import type { WebhookEventType, WebhookTables } from './tables.ts'
import { WEBHOOKS_MIGRATIONS } from './migrations/index.ts'
import { insertFeatureEvent, outboxHook } from './outbox.ts'
import { DeliveryWorker } from './worker.ts'

export const MAX_DESCRIPTION_LENGTH = 500
/** How often the count of endpoints receiving events is read again (another instance may have created one). */
const ENABLED_REFRESH_MS = 5_000

export interface WebhooksPluginOptions {
  config: WebhooksConfig
  /** HISTORY_RETENTION_DAYS: finished deliveries are kept as long as the records they announce. */
  retentionDays: number
  metrics: Metrics
  events: IdentificationEvents
  /** Host name resolution for the SSRF checks (tests resolve names without DNS); dns.lookup by default. */
  resolve?: Resolver
  /** The clock of leases, retries and the five-day rule (tests); Date.now by default. */
  now?: () => number
}

/** What tests reach behind the public surface: the store and the worker (see internalsOf). */
export interface WebhooksInternals {
  store: WebhookStore
  worker: DeliveryWorker
}

const INTERNALS = Symbol('webhooks internals')

/** For tests only: the store and the worker behind `app.webhooks` (no other module may import this file). */
export function internalsOf (webhooks: Webhooks): WebhooksInternals {
  const internals = (webhooks as Webhooks & { [INTERNALS]?: WebhooksInternals })[INTERNALS]
  if (internals === undefined) throw new Error('not the webhooks plugin\'s app.webhooks')
  return internals
}

async function webhooksPlugin (app: FastifyInstance, options: WebhooksPluginOptions): Promise<void> {
  const { config, events, metrics, resolve = systemResolver, now } = options
  app.graphqlRegistry.add(webhooksGraphql)
  const history = app.history
  if (history === null) {
    app.decorate('webhooks', null)
    return
  }
  const database = app.database
  if (database === null) throw new Error('webhooks: history is on but there is no database')
  const log = app.log.child({ component: 'webhooks' })
  database.registerMigrations('webhooks', WEBHOOKS_MIGRATIONS)
  // The outbox rows are written in the records' transaction (a crash between the two would lose events).
  history.onRecordTransaction(outboxHook)
  const store = new WebhookStore(database.db.withTables<WebhookTables>(), database.dialect === 'postgres', now)

  let pending = 0
  let disabled = 0
  const measured = webhookMetrics(metrics, { pending: () => pending, disabled: () => disabled, inFlight: () => worker.inFlight })

  const thumbnails = app.thumbnails
  const featureEvents = new Map<string, (subjectId: string) => Promise<Record<string, unknown> | undefined>>()
  const worker = new DeliveryWorker({
    store,
    config,
    resolve,
    log,
    retentionDays: options.retentionDays,
    getRecord: async id => await history.getRecord(id),
    payload: {
      thumbnailPath: thumbnails === null ? null : id => thumbnails.signer.sign(id).path,
      publicBaseUrl: config.publicBaseUrl,
      featureEvents
    },
    hooks: {
      outcome: measured.attempt,
      counts: (p, d) => { pending = p; disabled = d }
    }
  })
  app.workers.register(worker)
  // A recorded identification may have put deliveries in the outbox: look now rather than at the next poll.
  // While an endpoint receives events, an answer waits for its record (and so its outbox rows) to be written:
  // a process killed after answering then loses no event. Known here at once for this instance's changes, and
  // within ENABLED_REFRESH_MS for another instance's (an endpoint created elsewhere).
  let enabled = 0
  // With no endpoint enabled there is nothing to deliver: nothing per identification (the poll finds the rest).
  const wake = (): void => { if (enabled > 0) void history.flushed().then(() => { worker.kick() }) }
  events.on('completed', wake)
  events.on('failed', wake)

  const refreshEnabled = async (): Promise<void> => {
    try { enabled = await store.countEnabled() } catch {} // the database is down: the recorder does not wait then anyway
  }
  history.writeBeforeAnswering(() => enabled > 0)
  const enabledTimer = setInterval(() => { void refreshEnabled() }, ENABLED_REFRESH_MS)
  enabledTimer.unref()
  app.addHook('onReady', refreshEnabled)
  app.addHook('onClose', async () => { clearInterval(enabledTimer) })

  const checkUrl = async (url: string): Promise<void> => {
    try {
      await checkEndpointUrl(url, { allowLoopback: config.allowLoopback, resolve })
    } catch (err) {
      if (err instanceof UrlRefused) throw new InvalidWebhookUrlError(err.message, err.reason)
      throw err
    }
  }
  const checkEvents = (list: readonly WebhookEventType[]): void => {
    if (list.length === 0) throw new BadUserInputError('`events` must name at least one event type.', { argument: 'events' })
  }
  const checkDescription = (text: string | null | undefined): void => {
    if (text != null && text.length > MAX_DESCRIPTION_LENGTH) {
      throw new BadUserInputError(`\`description\` is at most ${MAX_DESCRIPTION_LENGTH} characters.`, { argument: 'description' })
    }
  }

  // Every database call of the public methods: a failure becomes STORAGE_UNAVAILABLE (503), logged once.
  const query = async <T>(run: () => Promise<T>): Promise<T> => await database.query(run)
  let ready = false
  app.addHook('onReady', async () => { ready = true })
  const webhooks: Webhooks & WebhookEvents & { [INTERNALS]: WebhooksInternals } = {
    [INTERNALS]: { store, worker },
    registerEventType (event) {
      if (ready) throw new Error(`webhooks: event type ${event.type} registered after start-up`)
      featureEvents.set(event.type, async id => await event.payload(id))
    },
    async enqueue (trx, type, subjectId, createdAt) {
      await insertFeatureEvent(trx, type, subjectId, createdAt)
      worker.kick()
    },
    async listEndpoints () {
      return await query(() => store.listEndpoints())
    },
    async listDeliveries (endpointId, size, afterId) {
      return await query(() => store.listDeliveries(endpointId, size, afterId))
    },
    async attemptsOf (deliveryIds) {
      return await query(() => store.attemptsOfMany(deliveryIds))
    },
    async redeliver (deliveryId) {
      const delivery = await query(() => store.redeliver(deliveryId))
      if (delivery !== undefined) worker.kick()
      return delivery
    },
    async create (url, list, description) {
      checkEvents(list)
      checkDescription(description)
      await checkUrl(url)
      const secret = newSecret()
      // The limit is checked in the insert's transaction (concurrent creates cannot all pass it).
      const endpoint = await query(() => store.createEndpoint(url, [...new Set(list)], description, secret, config.maxEndpoints))
      if (endpoint === undefined) {
        throw new BadUserInputError(`At most ${config.maxEndpoints} webhook endpoints (WEBHOOK_MAX_ENDPOINTS); delete one first.`, { reason: 'too_many_endpoints' })
      }
      log.info({ endpoint: endpoint.id }, 'webhooks: endpoint created') // never its URL (it may carry a token) nor its secret
      await refreshEnabled()
      return { endpoint, secret }
    },
    async update (id, change) {
      if (change.events !== undefined) checkEvents(change.events)
      checkDescription(change.description)
      if (change.url !== undefined) await checkUrl(change.url)
      const eventTypes = change.events && [...new Set(change.events)]
      const updated = await query(() => store.updateEndpoint(id, { ...change, events: eventTypes }))
      await refreshEnabled()
      return updated
    },
    async rotate (id) {
      const secret = newSecret()
      const endpoint = await query(() => store.rotateSecret(id, secret, config.rotationOverlapMs))
      if (endpoint !== undefined) log.info({ endpoint: id }, 'webhooks: secret rotated')
      return endpoint === undefined ? undefined : { endpoint, secret }
    },
    async delete (id) {
      const deleted = await query(() => store.deleteEndpoint(id))
      await worker.cancelEndpoint(id) // this instance's attempts in flight to it stop before the answer
      if (deleted) log.info({ endpoint: id }, 'webhooks: endpoint deleted')
      await refreshEnabled()
      return deleted
    }
  }
  app.decorate('webhooks', webhooks)
}

export default fp(webhooksPlugin, { name: 'webhooks', fastify: '5.x', dependencies: ['workers', 'database', 'history', 'thumbnails'] })
