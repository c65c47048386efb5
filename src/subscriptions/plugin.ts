// Subscriptions as a capability: the WebSocket server (@fastify/websocket, with our message size limit,
// graphql-transport-ws only, and a 1001 close for every socket at shutdown), each socket's messages,
// authentication and lifecycle (connections.ts), the limits (limits.ts), the channel between instances (emitter.ts, REDIS_URL), and
// the publisher: every completed identification, as a compact message (payload.ts), to mercurius'
// pubsub. It hands the GraphQL core its part (./subscriptions.graphql, ./graphql.ts) and its transport
// (`app.graphqlRegistry.useSubscriptions`): the graphql plugin registers mercurius with `mercuriusOptions(...)`;
// the resolver starts each subscription with `app.subscriptions.subscribe`.
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import websocket, { type WebSocket } from '@fastify/websocket'
import type { IResolvers, PubSub, SubscriptionContext } from 'mercurius'
import type { SubscriptionTransport } from '../graphql/registry.ts'
import { Counter } from 'prom-client'
import { BadRequestError } from '../errors.ts'
import type { IdentificationEvents } from '../identification/events.ts'
import type { Metrics } from '../metrics/registry.ts'
import type { SubscriptionsConfig } from './config.ts'
import { Connections, PROTOCOL } from './connections.ts'
import { closeRedisEmitter, createRedisEmitter } from './emitter.ts'
import { matches, type LiveFilter } from './filter.ts'
import { SubscriptionLimits } from './limits.ts'
import { COMPLETED_TOPIC, messageOf, type CompletedMessage } from './payload.ts'
import { countQueued, eventSizes, type QueueStream } from './queued.ts'
import { subscriptionResolvers } from './graphql.ts'

/** The transport the graphql plugin hands to mercurius (registered in `app.graphqlRegistry`), and the resolvers' entry. */
export interface Subscriptions extends SubscriptionTransport {
  /**
   * One subscriber's stream of completed identifications that pass `filter`; counted against the limits
   * (throws TOO_MANY_SUBSCRIPTIONS or OVERLOADED) until it ends. `socketClosed` is the subscriber's
   * `closed` signal: it tells the socket whose backlog the subscription's queue counts in.
   */
  subscribe (
    pubsub: SubscriptionContext, callerId: string, filter: LiveFilter, socketClosed: AbortSignal
  ): Promise<AsyncIterableIterator<CompletedMessage>>
}

declare module 'fastify' {
  interface FastifyInstance {
    subscriptions: Subscriptions
  }
}

/** Of the shutdown grace, how long sockets get to finish their closing handshake before they are cut. */
const CLOSE_WAIT_MS = 5_000

export interface SubscriptionsOptions {
  config: SubscriptionsConfig
  /** The Redis that carries completed identifications between instances (REDIS_URL); null: this instance alone. */
  redisUrl: string | null
  /** NODE_ENV=production (anonymous sockets are refused there unless AUTH_MODE=none is accepted). */
  production: boolean
  /** How long shutting down waits (SHUTDOWN_GRACE_MS): sockets get at most part of it to close. */
  shutdownGraceMs: number
  events: IdentificationEvents
  metrics: Metrics
}

async function subscriptionsPlugin (app: FastifyInstance, options: SubscriptionsOptions): Promise<void> {
  const { config: settings, redisUrl, production, shutdownGraceMs, events, metrics } = options
  const log = app.log.child({ component: 'subscriptions' })

  const refusals = new Counter({
    name: 'agrivision_subscription_refusals_total',
    help: 'Subscription sockets and subscriptions refused or ended by the server, by reason.',
    labelNames: ['reason'] as const,
    registers: [metrics.registry]
  })
  const published = new Counter({
    name: 'agrivision_subscription_events_total',
    help: 'Completed identifications published to subscribers, by result (published, failed).',
    labelNames: ['result'] as const,
    registers: [metrics.registry]
  })
  const limits = new SubscriptionLimits(settings.perCaller, settings.max, reason => refusals.inc({ reason }))
  const connections = new Connections({
    verify: app.verifyCaller,
    log,
    production,
    initTimeoutMs: settings.initTimeoutMs,
    // A socket that counts holds a subscription: never more sockets than subscriptions may exist.
    maxConnections: settings.max,
    // A socket carries several subscriptions: a caller needs no more sockets than it may hold subscriptions.
    socketsPerCaller: settings.perCaller,
    idleTimeoutMs: settings.idleTimeoutMs,
    messagesPerSecond: settings.messagesPerSecond,
    maxQueuedBytes: settings.maxQueuedBytes,
    refused: reason => refusals.inc({ reason })
  })
  const sizeOf = eventSizes()
  metrics.gauge('agrivision_subscriptions_active', 'GraphQL subscriptions running on this instance.', () => limits.active)
  metrics.gauge('agrivision_subscription_connections', 'Subscription WebSocket connections open on this instance.', () => connections.open)
  // One listener per running subscription: more than agrivision_subscriptions_active would be a leak. Read from
  // mqemitter's matcher (its only count; mqemitter-redis is an mqemitter too).
  let publishedTo: PubSub | undefined
  metrics.gauge('agrivision_subscription_listeners', 'Listeners for completed identifications in this process\'s emitter.', () => {
    const emitter = (publishedTo as { emitter?: { _matcher?: { match: (topic: string) => unknown[] } } } | undefined)?.emitter
    return emitter?._matcher?.match(COMPLETED_TOPIC).length ?? 0
  })

  await app.register(websocket, {
    // The subprotocol answered: graphql-transport-ws when offered (an upgrade that does not offer it is refused below).
    options: { maxPayload: settings.maxPayloadBytes, handleProtocols: (offered) => offered.has(PROTOCOL) ? PROTOCOL : false },
    // A client's protocol error (a message over the size limit: 1009) is the client's: ws is already
    // closing the socket with the right code, so it is not cut here (which would lose that code).
    errorHandler: (err, socket, request) => {
      const code = (err as { code?: string }).code
      if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') refusals.inc({ reason: 'payload_too_large' })
      request.log.info({ err: { name: err.name, code, message: err.message } }, 'subscription socket error')
      if (socket.readyState === socket.OPEN) socket.terminate()
    },
    preClose: async function () {
      await connections.closeAll(Math.min(CLOSE_WAIT_MS, shutdownGraceMs))
      // What is still closing (refused as the server filled up, just before) is cut: ws' server closes only once they are gone.
      for (const socket of app.websocketServer.clients) if (socket.readyState !== socket.CLOSED) socket.terminate()
      await new Promise<void>(resolve => { app.websocketServer.close(() => resolve()) })
    }
  })
  // Emitted as a socket opens, just before mercurius gets it: our listeners come first.
  app.websocketServer.on('connection', (socket: WebSocket) => { connections.track(socket) })
  // mercurius also speaks the legacy `graphql-ws` subprotocol (start/stop), and takes it when none is offered:
  // an upgrade that does not offer graphql-transport-ws is refused before it is one (`ws`: set by @fastify/websocket).
  // Before the handler (which upgrades), after the onRequest hooks: a refused upgrade is rate-limited as any.
  app.addHook('preHandler', async (request) => {
    if (request.ws && !offersProtocol(request.headers['sec-websocket-protocol'])) {
      refusals.inc({ reason: 'subprotocol' })
      throw new BadRequestError(`Subscriptions speak the ${PROTOCOL} subprotocol only (the graphql-ws client library's): offer it in Sec-WebSocket-Protocol.`)
    }
  })

  const emitter = redisUrl === null ? undefined : createRedisEmitter(redisUrl, log)
  if (emitter !== undefined) app.addHook('onClose', async () => { await closeRedisEmitter(emitter) })

  const subscriptions: Subscriptions = {
    mercuriusOptions: (context) => ({
      ...(emitter === undefined ? {} : { emitter }),
      keepAlive: settings.keepAliveMs === 0 ? undefined : settings.keepAliveMs,
      // Called by mercurius while it handles connection_init; for a refused socket (closing with its code) it never returns.
      context: async (socket, request) => context(request, await connections.caller(socket))
    }),

    publishTo (pubsub) {
      publishedTo = pubsub
      events.on('completed', event => {
        // A bulk job's items are announced by the job (bulkJobUpdated), never one by one: a job may hold 100,000.
        if (event.bulkJobId !== undefined) return
        // No subscription on this instance and no other instance to tell (no Redis): nobody to publish to.
        if (emitter === undefined && limits.active === 0) return
        // The callback's error is untyped in mercurius' types, but mqemitter-redis passes one.
        const done = (err?: Error | null): void => {
          if (err) {
            published.inc({ result: 'failed' })
            log.warn({ err: { name: err.name, message: err.message }, identification: event.id }, 'subscriptions: could not publish an identification')
          } else {
            published.inc({ result: 'published' })
          }
        }
        pubsub.publish({ topic: COMPLETED_TOPIC, payload: messageOf(event) }, done as () => void)
      })
    },

    async subscribe (pubsub, callerId, filter, socketClosed) {
      const backlog = connections.backlog(socketClosed)
      const release = limits.acquire(callerId)
      let source: AsyncIterable<CompletedMessage>
      try {
        // mercurius' per-subscription pubsub: subscribe() resolves to the subscription's queue (a Readable).
        source = await pubsub.subscribe<CompletedMessage>(COMPLETED_TOPIC)
      } catch (err) {
        release()
        throw err
      }
      if ((pubsub as { closed?: boolean }).closed === true || socketClosed.aborted) {
        // mercurius closed this subscription (a `complete` right after its `subscribe`, or its socket went away)
        // while the listener was being added: its closers ran before ours was registered, so remove it here.
        for (const close of (source as { close?: Array<() => void> }).close ?? []) close()
        release()
        return (async function * () {})()
      }
      const queued = countQueued(source as unknown as QueueStream, backlog, sizeOf)
      return filtered(source, message => matches(message, filter), () => { queued.end(); release() }, queued.taken)
    }
  }
  app.decorate('subscriptions', subscriptions)
  app.graphqlRegistry.add({
    name: 'subscriptions',
    sdl: readFileSync(new URL('./subscriptions.graphql', import.meta.url), 'utf8'),
    resolvers: { Subscription: subscriptionResolvers } as IResolvers
  })
  app.graphqlRegistry.useSubscriptions(subscriptions)
}

/** Whether a Sec-WebSocket-Protocol header offers graphql-transport-ws (a comma-separated list, maybe several headers). */
function offersProtocol (header: string | string[] | undefined): boolean {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header]
  return values.some(value => value.split(',').some(offered => offered.trim() === PROTOCOL))
}

export default fp(subscriptionsPlugin, { name: 'subscriptions', fastify: '5.x', dependencies: ['caller-auth', 'graphql-registry'] })

/**
 * The messages of `source` that match; `taken` is told of each one read, `release` runs once when the
 * stream ends, either way. A plain iterator rather than an async generator: a generator's return() waits
 * for its pending next() (the next event, maybe never), so an ended subscription would hold its lease until then.
 */
function filtered<T> (
  source: AsyncIterable<T>, match: (value: T) => boolean, release: () => void, taken: (value: T) => void
): AsyncIterableIterator<T> {
  const iterator = source[Symbol.asyncIterator]()
  return {
    async next () {
      for (;;) {
        const result = await iterator.next()
        if (result.done === true) { release(); return result }
        taken(result.value)
        if (match(result.value)) return result
      }
    },
    async return () {
      release()
      await iterator.return?.()
      return { done: true, value: undefined }
    },
    [Symbol.asyncIterator] () { return this }
  }
}
