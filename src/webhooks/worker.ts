// The delivery worker: claims due deliveries from the outbox (a lease, so that instances sharing a
// PostgreSQL database never attempt one twice at once, and an instance killed mid-attempt loses its claim
// when the lease passes), attempts each (bounded in total and per endpoint), and records the outcome:
// success, a retry on the schedule (with jitter; Retry-After on 429/503 honoured), or failure for good.
import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Worker } from '../workers/plugin.ts'
import type { WebhooksConfig } from './config.ts'
import { attempt, type AttemptOutcome } from './delivery.ts'
import { buildPayload, type PayloadOptions, type RecordReader } from './payload.ts'
import { signedHeaders } from './signing.ts'
import { checkEndpointUrl, UrlRefused, type Resolver } from './ssrf.ts'
import type { ClaimedDelivery, WebhookStore } from './store.ts'

const THUMBNAIL_RECHECK_MS = 200
/** How often the pending and disabled counts (metrics) are refreshed. */
const COUNTS_INTERVAL_MS = 5_000
/** Finished deliveries are kept as long as history keeps records (HISTORY_RETENTION_DAYS), purged hourly. */
const PURGE_INTERVAL_MS = 3_600_000
const PURGE_BATCH = 1000
const DAY_MS = 86_400_000
/** How long stopping waits for attempts in flight before abandoning them. */
const STOP_GRACE_MS = 3_000

export interface DeliveryHooks {
  /** An attempt's outcome: succeeded, retried, failed (for good). */
  outcome (result: 'succeeded' | 'retried' | 'failed'): void
  counts (pending: number, disabled: number): void
}

export interface DeliveryWorkerOptions {
  store: WebhookStore
  config: WebhooksConfig
  resolve: Resolver
  payload: PayloadOptions
  /** Reads the identification a delivery announces (history.getRecord). */
  getRecord: RecordReader
  log: FastifyBaseLogger
  hooks: DeliveryHooks
  /** How long finished deliveries stay in the log. */
  retentionDays: number
}

export class DeliveryWorker implements Worker {
  readonly name = 'webhooks'
  /** This instance's name on its leases. */
  readonly owner = randomUUID()
  readonly #o: DeliveryWorkerOptions
  readonly #perEndpoint = new Map<string, number>()
  /** Aborts the attempts in flight to an endpoint (deleted here) or all of them (stopping). */
  readonly #aborts = new Map<string, AbortController>()
  readonly #running = new Set<Promise<void>>()
  readonly #runsByEndpoint = new Map<string, Set<Promise<void>>>()
  #inFlight = 0
  #attempted = 0
  #timer: NodeJS.Timeout | null = null
  #countsTimer: NodeJS.Timeout | null = null
  #purgeTimer: NodeJS.Timeout | null = null
  #claiming: Promise<void> | null = null
  #again = false
  #stopped = false
  #failing = false

  constructor (options: DeliveryWorkerOptions) {
    this.#o = options
  }

  get inFlight (): number { return this.#inFlight }
  /** Attempts made by this instance since it started. */
  get attempted (): number { return this.#attempted }

  start (): void {
    this.#timer = setInterval(() => { this.kick() }, this.#o.config.pollMs)
    this.#timer.unref()
    this.#countsTimer = setInterval(() => { void this.#refreshCounts() }, COUNTS_INTERVAL_MS)
    this.#countsTimer.unref()
    this.#purgeTimer = setInterval(() => { void this.#purge() }, PURGE_INTERVAL_MS)
    this.#purgeTimer.unref()
    void this.#refreshCounts()
    void this.#purge()
    this.kick()
  }

  async stop (): Promise<void> {
    this.#stopped = true
    if (this.#timer !== null) clearInterval(this.#timer)
    if (this.#countsTimer !== null) clearInterval(this.#countsTimer)
    if (this.#purgeTimer !== null) clearInterval(this.#purgeTimer)
    await this.#claiming
    // Attempts in flight get a moment to finish; then they are abandoned: their claims are given back, and
    // whoever runs next sends them again (same webhook-id).
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.allSettled([...this.#running]), new Promise(resolve => { timer = setTimeout(resolve, STOP_GRACE_MS) })])
    clearTimeout(timer)
    for (const controller of this.#aborts.values()) controller.abort()
    await Promise.allSettled([...this.#running])
  }

  degraded (): boolean { return this.#failing }

  /** Looks for due deliveries now (a new identification was recorded, an attempt finished). */
  kick (): void {
    if (this.#stopped) return
    if (this.#claiming !== null) { this.#again = true; return }
    this.#claiming = this.#claimAndStart().finally(() => {
      this.#claiming = null
      if (this.#again) { this.#again = false; this.kick() }
    })
  }

  /** Abandons this instance's attempts to a deleted endpoint at once; resolves when they have let go of their connections. */
  async cancelEndpoint (endpointId: string): Promise<void> {
    this.#aborts.get(endpointId)?.abort()
    await Promise.allSettled([...(this.#runsByEndpoint.get(endpointId) ?? [])])
  }

  async #claimAndStart (): Promise<void> {
    const { store, config } = this.#o
    for (;;) {
      const free = config.concurrency - this.#inFlight
      if (free <= 0 || this.#stopped) return
      const busy = [...this.#perEndpoint].filter(([, n]) => n >= config.concurrencyPerEndpoint).map(([id]) => id)
      let claimed: ClaimedDelivery[]
      try {
        claimed = await store.claim(this.owner, free, config.leaseMs, busy)
        if (this.#failing) this.#o.log.info('webhooks: the outbox is reachable again')
        this.#failing = false
      } catch (err) {
        if (!this.#failing) this.#o.log.warn({ err }, 'webhooks: cannot read the outbox; trying again at the next poll')
        this.#failing = true
        return
      }
      for (const delivery of claimed) {
        const running = this.#perEndpoint.get(delivery.endpointId) ?? 0
        if (running >= config.concurrencyPerEndpoint) {
          await store.release(delivery.id, this.owner).catch(() => {}) // the lease expires anyway
          continue
        }
        this.#perEndpoint.set(delivery.endpointId, running + 1)
        // From the claim on, deleting its endpoint here aborts it (see cancelEndpoint).
        if (!this.#aborts.has(delivery.endpointId)) this.#aborts.set(delivery.endpointId, new AbortController())
        this.#inFlight++
        const run = this.#run(delivery).catch(err => {
          this.#o.log.error({ err, delivery: delivery.id }, 'webhooks: delivery attempt failed unexpectedly; retried when its lease expires')
        }).finally(() => {
          this.#inFlight--
          const left = (this.#perEndpoint.get(delivery.endpointId) ?? 1) - 1
          if (left > 0) {
            this.#perEndpoint.set(delivery.endpointId, left)
          } else {
            this.#perEndpoint.delete(delivery.endpointId)
            this.#aborts.delete(delivery.endpointId)
          }
          this.#running.delete(run)
          const runs = this.#runsByEndpoint.get(delivery.endpointId)
          runs?.delete(run)
          if (runs?.size === 0) this.#runsByEndpoint.delete(delivery.endpointId)
          this.kick()
        })
        this.#running.add(run)
        const runs = this.#runsByEndpoint.get(delivery.endpointId) ?? new Set()
        runs.add(run)
        this.#runsByEndpoint.set(delivery.endpointId, runs)
      }
      if (claimed.length < free) return
    }
  }

  async #run (delivery: ClaimedDelivery): Promise<void> {
    const { store, config, log, hooks } = this.#o
    const endpoint = await store.endpointForAttempt(delivery.endpointId)
    if (endpoint === undefined) { // deleted (its deliveries went with it) or disabled meanwhile
      await store.release(delivery.id, this.owner)
      return
    }
    const { getRecord, payload: options } = this.#o
    const payload = await buildPayload(getRecord, delivery.eventType, delivery.identificationId, delivery.createdAt, options)
    const startedAt = new Date(store.now())
    if (payload.kind === 'gone') {
      await store.complete(delivery, this.owner, {
        attempt: { startedAt, durationMs: 0, status: null, error: 'The identification was withdrawn or purged before it could be delivered.', response: null },
        result: 'failed'
      }, config.disableAfterFailingMs)
      hooks.outcome('failed')
      return
    }
    if (payload.kind === 'no-thumbnail-yet' && startedAt.getTime() - delivery.createdAt < config.thumbnailWaitMs) {
      await store.postpone(delivery.id, this.owner, startedAt.getTime() + THUMBNAIL_RECHECK_MS)
      return
    }

    let outcome: AttemptOutcome
    const controller = this.#aborts.get(delivery.endpointId)!
    try {
      // The name is resolved within the attempt's time (a hung resolver must not outlast the lease), and abortably.
      const target = await withinDeadline(checkEndpointUrl(endpoint.url, { allowLoopback: config.allowLoopback, resolve: this.#o.resolve }),
        config.timeoutMs, controller.signal)
      // Deleted (on any instance) while the payload was built and the name resolved: not sent.
      if (await store.endpointForAttempt(delivery.endpointId) === undefined) {
        await store.release(delivery.id, this.owner).catch(() => {})
        return
      }
      // The real clock, whatever clock the schedule runs on: receivers check the timestamp against theirs.
      const headers = signedHeaders(delivery.messageId, new Date(), payload.body, endpoint.secrets)
      const { timeoutMs } = config
      this.#attempted++
      outcome = await attempt({ target, headers: { ...headers }, body: payload.body, timeoutMs, signal: controller.signal })
    } catch (err) {
      if (err instanceof DeadlineError) {
        outcome = { status: null, durationMs: config.timeoutMs, error: err.message, response: null, retryAfterMs: null }
      } else {
        if (!(err instanceof UrlRefused)) throw err
        // DNS changed since the endpoint was created: refused like a failed attempt (and retried: it may change back).
        outcome = { status: null, durationMs: 0, error: `refused: ${err.reason}`, response: null, retryAfterMs: null }
      }
    }
    if (outcome.error === 'cancelled') { // deleted here, or stopping: nothing to record
      await store.release(delivery.id, this.owner).catch(() => {})
      return
    }

    const attemptNumber = delivery.attempts + 1
    const ok = outcome.status !== null && outcome.status >= 200 && outcome.status < 300
    const gone = outcome.status === 410
    const record = { startedAt, durationMs: outcome.durationMs, status: outcome.status, error: outcome.error, response: outcome.response }
    let result: 'succeeded' | 'retry' | 'failed'
    let retryAt: number | undefined
    if (ok) result = 'succeeded'
    else if (gone || attemptNumber >= config.retryScheduleMs.length) result = 'failed'
    else {
      result = 'retry'
      const scheduled = jitter(config.retryScheduleMs[attemptNumber]!)
      retryAt = store.now() + Math.max(scheduled, outcome.retryAfterMs ?? 0)
    }
    const { recorded, disabled, detailsRefused } = await store.complete(delivery, this.owner, {
      attempt: record,
      result,
      retryAt,
      disable: gone ? 'The endpoint answered 410 Gone.' : null
    }, config.disableAfterFailingMs)
    if (!recorded) return
    if (detailsRefused !== undefined) {
      log.warn({ delivery: delivery.id, reason: detailsRefused }, 'webhooks: the database refused this attempt\'s details; the attempt is counted without them')
    }
    hooks.outcome(result === 'retry' ? 'retried' : result)
    if (disabled !== null) log.warn({ endpoint: delivery.endpointId, reason: disabled }, 'webhooks: endpoint disabled')
  }

  async #purge (): Promise<void> {
    const before = this.#o.store.now() - this.#o.retentionDays * DAY_MS
    try {
      while (!this.#stopped && await this.#o.store.purgeDeliveries(before, PURGE_BATCH) === PURGE_BATCH) {
        await new Promise(resolve => setImmediate(resolve))
      }
    } catch (err) {
      this.#o.log.warn({ err }, 'webhooks: purging old deliveries failed; trying again in an hour')
    }
  }

  async #refreshCounts (): Promise<void> {
    try {
      this.#o.hooks.counts(await this.#o.store.countPending(), await this.#o.store.countDisabled())
    } catch {} // the outbox is unreachable: the claim loop says so
  }
}

/** ±10 %: retries of many deliveries that failed together do not arrive together. */
function jitter (ms: number): number {
  return Math.round(ms * (0.9 + Math.random() * 0.2))
}

/** The name lookup did not finish in time (or the attempt was cancelled meanwhile). */
class DeadlineError extends Error {}

async function withinDeadline<T> (work: Promise<T>, ms: number, signal: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    if (signal.aborted) { reject(new DeadlineError('cancelled')); return }
    timer = setTimeout(() => { reject(new DeadlineError(`the host name did not resolve within ${ms} ms`)) }, ms)
    signal.addEventListener('abort', () => { reject(new DeadlineError('cancelled')) }, { once: true })
  })
  deadline.catch(() => {}) // settled after the race is won: never an unhandled rejection
  try {
    return await Promise.race([work, deadline])
  } finally {
    clearTimeout(timer)
  }
}
