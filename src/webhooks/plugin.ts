// Webhooks as a capability: endpoint management for the GraphQL resolvers (`app.webhooks`), and the delivery
// worker (registered with app.workers) that sends what HistoryStore.insertMany put in the outbox. Needs history
// (the outbox lives in its database); with HISTORY=off `app.webhooks` is null.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { Counter } from 'prom-client'
import type { AppServices } from '../services.ts'
import { BadUserInputError, InvalidWebhookUrlError } from '../errors.ts'
import type { History } from '../history/public.ts'
import type { WebhooksConfig } from './config.ts'
import { newSecret } from './signing.ts'
import { checkEndpointUrl, systemResolver, UrlRefused, type Resolver } from './ssrf.ts'
import { WebhookStore, type Endpoint } from './store.ts'
import type { WebhookEventType, WebhookTables } from './tables.ts'
import type { HistoryTables } from '../history/tables.ts'
import { WEBHOOKS_MIGRATIONS } from './migrations/index.ts'
import { outboxHook } from './outbox.ts'
import { DeliveryWorker } from './worker.ts'

export const MAX_DESCRIPTION_LENGTH = 500
/** How often the count of endpoints receiving events is read again (another instance may have created one). */
const ENABLED_REFRESH_MS = 5_000

export interface Webhooks {
  config: WebhooksConfig
  store: WebhookStore
  history: History
  worker: DeliveryWorker
  create (url: string, events: readonly WebhookEventType[], description: string | null): Promise<{ endpoint: Endpoint, secret: string }>
  update (id: string, change: { url?: string, events?: readonly WebhookEventType[], description?: string | null, enabled?: boolean }):
  Promise<Endpoint | undefined>
  rotate (id: string): Promise<{ endpoint: Endpoint, secret: string } | undefined>
  delete (id: string): Promise<boolean>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Webhook endpoints and their delivery; null when HISTORY=off. */
    webhooks: Webhooks | null
  }
}

export interface WebhooksPluginOptions extends AppServices {
  /** Host name resolution for the SSRF checks (tests resolve names without DNS); dns.lookup by default. */
  resolve?: Resolver
  /** The clock of leases, retries and the five-day rule (tests); Date.now by default. */
  now?: () => number
}

async function webhooksPlugin (app: FastifyInstance, options: WebhooksPluginOptions): Promise<void> {
  const { config: { webhooks: config }, events, metrics, resolve = systemResolver, now } = options
  const history = app.history
  if (history === null) {
    app.decorate('webhooks', null)
    return
  }
  const database = app.database
  if (database === null) throw new Error('webhooks: no database')
  const log = app.log.child({ component: 'webhooks' })
  database.registerMigrations('webhooks', WEBHOOKS_MIGRATIONS)
  // The outbox rows are written in the records' transaction.
  history.onRecordTransaction(outboxHook)
  const store = new WebhookStore(database.db as unknown as Kysely<HistoryTables & WebhookTables>, database.dialect === 'postgres', now)

  const deliveries = new Counter({
    name: 'agrivision_webhook_attempts_total',
    help: 'Webhook delivery attempts by outcome: succeeded, retried (failed, another attempt scheduled), failed (given up).',
    labelNames: ['outcome'] as const,
    registers: [metrics.registry]
  })
  let pending = 0
  let disabled = 0
  metrics.gauge('agrivision_webhook_deliveries_pending', 'Webhook deliveries waiting for an attempt (all instances).', () => pending)
  metrics.gauge('agrivision_webhook_endpoints_disabled', 'Webhook endpoints disabled (410 Gone, failing for days, by an administrator).', () => disabled)

  const thumbnails = app.thumbnails
  const worker = new DeliveryWorker({
    store,
    config,
    resolve,
    log,
    retentionDays: options.config.history.retentionDays,
    payload: { thumbnailPath: thumbnails === null ? null : id => thumbnails.signer.sign(id).path, publicBaseUrl: config.publicBaseUrl },
    hooks: {
      outcome: result => deliveries.inc({ outcome: result }),
      counts: (p, d) => { pending = p; disabled = d }
    }
  })
  metrics.gauge('agrivision_webhook_attempts_in_flight', 'Webhook attempts in flight on this instance.', () => worker.inFlight)
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

  const webhooks: Webhooks = {
    config,
    store,
    history,
    worker,
    async create (url, list, description) {
      checkEvents(list)
      checkDescription(description)
      await checkUrl(url)
      const secret = newSecret()
      // The limit is checked in the insert's transaction (concurrent creates cannot all pass it).
      const endpoint = await database.query(() => store.createEndpoint(url, [...new Set(list)], description, secret, config.maxEndpoints))
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
      const updated = await database.query(() => store.updateEndpoint(id, { ...change, events: eventTypes }))
      await refreshEnabled()
      return updated
    },
    async rotate (id) {
      const secret = newSecret()
      const endpoint = await database.query(() => store.rotateSecret(id, secret, config.rotationOverlapMs))
      if (endpoint !== undefined) log.info({ endpoint: id }, 'webhooks: secret rotated')
      return endpoint === undefined ? undefined : { endpoint, secret }
    },
    async delete (id) {
      const deleted = await database.query(() => store.deleteEndpoint(id))
      await worker.cancelEndpoint(id) // this instance's attempts in flight to it stop before the answer
      if (deleted) log.info({ endpoint: id }, 'webhooks: endpoint deleted')
      await refreshEnabled()
      return deleted
    }
  }
  app.decorate('webhooks', webhooks)
}

export default fp(webhooksPlugin, { name: 'webhooks', fastify: '5.x', dependencies: ['workers', 'database', 'history', 'thumbnails'] })
