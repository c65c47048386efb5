// Every query webhooks make (Kysely, SQLite and PostgreSQL alike): endpoints, the outbox's claim and
// completion, and the delivery log. The outbox rows themselves are written in the records' transaction
// (outbox.ts, a history RecordHook). On SQLite these run on the request thread's connection: small statements (a claim,
// an attempt's result), as history's deletes and idempotency keys do; the records' writes stay on the writer thread.
import { randomUUID } from 'node:crypto'
import { type Kysely, sql } from 'kysely'
import { classifyWriteError } from '../database/write-errors.ts'
import type { WebhookDeliveriesTable, WebhookEndpointsTable, WebhookEventType, WebhookTables } from './tables.ts'
import type { Attempt, Delivery, Endpoint } from './public.ts'

/** An attempt's outcome as the worker hands it to complete(). */
export interface CompletedAttempt {
  attempt: Omit<Attempt, 'attempt'>
  result: 'succeeded' | 'retry' | 'failed'
  retryAt?: number
  disable?: string | null
}

/** A claimed delivery with what its attempt needs. */
export interface ClaimedDelivery {
  id: number
  endpointId: string
  messageId: string
  eventType: WebhookEventType
  identificationId: string
  createdAt: number
  attempts: number
}

export interface EndpointSecrets {
  url: string
  secrets: string[]
}

type Row = WebhookEndpointsTable & { events: string | null }

/** The advisory lock creates take on PostgreSQL (one number for "webhook endpoints", within this database). */
const ENDPOINT_CREATE_LOCK = 0x77686b45 // 'whkE'

/** Thrown inside createEndpoint's transaction to roll it back. */
class EndpointLimitReached extends Error {}

const date = (ms: number | null): Date | null => ms === null ? null : new Date(Number(ms))

export class WebhookStore {
  readonly db: Kysely<WebhookTables>
  readonly postgres: boolean
  readonly now: () => number

  constructor (db: Kysely<WebhookTables>, postgres: boolean, now: () => number = Date.now) {
    this.db = db
    this.postgres = postgres
    this.now = now
  }

  /**
   * Creates an endpoint unless `maxEndpoints` exist already (then undefined). The count is taken inside the
   * insert's transaction, after the insert, so that concurrent creates cannot all pass a check made before any
   * of them wrote: on PostgreSQL every create first takes one transaction-scoped advisory lock (creates queue
   * on it, deletes do not need it: they only make room); on SQLite the insert takes the database's write lock,
   * which is held until the commit, so the count that follows sees every create committed before it.
   */
  async createEndpoint (
    url: string, events: readonly WebhookEventType[], description: string | null, secret: string, maxEndpoints: number
  ): Promise<Endpoint | undefined> {
    const id = randomUUID()
    const now = this.now()
    const created = await this.db.transaction().execute(async trx => {
      if (this.postgres) await sql`select pg_advisory_xact_lock(${sql.lit(ENDPOINT_CREATE_LOCK)})`.execute(trx)
      await trx.insertInto('webhook_endpoints').values({
        id,
        url,
        description,
        secret,
        previous_secret: null,
        previous_secret_expires_at: null,
        created_at: now,
        updated_at: now,
        disabled_at: null,
        disabled_reason: null,
        last_success_at: null,
        failing_since: null
      }).execute()
      const row = await trx.selectFrom('webhook_endpoints').select(eb => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()
      if (Number(row.n) > maxEndpoints) throw new EndpointLimitReached()
      await trx.insertInto('webhook_endpoint_events').values(events.map(event => ({ endpoint_id: id, event_type: event }))).execute()
      return true
    }).catch(err => {
      if (err instanceof EndpointLimitReached) return false // rolled back: nothing was written
      throw err
    })
    return created ? await this.getEndpoint(id) : undefined
  }

  async listEndpoints (): Promise<Endpoint[]> {
    const rows = await this.#endpoints().orderBy('w.created_at').orderBy('w.id').execute()
    return rows.map(row => this.#toEndpoint(row as Row))
  }

  async getEndpoint (id: string): Promise<Endpoint | undefined> {
    const row = await this.#endpoints().where('w.id', '=', id).executeTakeFirst()
    return row === undefined ? undefined : this.#toEndpoint(row as Row)
  }

  #endpoints () {
    const events = this.postgres
      ? sql<string>`(select string_agg(event_type, ',') from webhook_endpoint_events s where s.endpoint_id = w.id)`
      : sql<string>`(select group_concat(event_type, ',') from webhook_endpoint_events s where s.endpoint_id = w.id)`
    return this.db.selectFrom('webhook_endpoints as w').selectAll('w').select(events.as('events'))
  }

  #toEndpoint (row: Row): Endpoint {
    const rotationEnds = row.previous_secret_expires_at === null || Number(row.previous_secret_expires_at) <= this.now()
      ? null
      : new Date(Number(row.previous_secret_expires_at))
    return {
      id: row.id,
      url: row.url,
      description: row.description,
      events: (row.events ?? '').split(',').filter(Boolean).sort() as WebhookEventType[],
      createdAt: new Date(Number(row.created_at)),
      updatedAt: new Date(Number(row.updated_at)),
      disabledAt: date(row.disabled_at),
      disabledReason: row.disabled_reason,
      lastSuccessAt: date(row.last_success_at),
      failingSince: date(row.failing_since),
      secretRotationEndsAt: rotationEnds
    }
  }

  /** Changes what is given; `enabled: true` re-enables a disabled endpoint (its failure streak forgotten). */
  async updateEndpoint (id: string, change: {
    url?: string, events?: readonly WebhookEventType[], description?: string | null, enabled?: boolean
  }): Promise<Endpoint | undefined> {
    const found = await this.db.transaction().execute(async trx => {
      const now = this.now()
      const set: Partial<WebhookEndpointsTable> = { updated_at: now }
      if (change.url !== undefined) set.url = change.url
      if (change.description !== undefined) set.description = change.description
      if (change.enabled === true) Object.assign(set, { disabled_at: null, disabled_reason: null, failing_since: null })
      if (change.enabled === false) Object.assign(set, { disabled_at: now, disabled_reason: 'Disabled by an administrator.' })
      const result = await trx.updateTable('webhook_endpoints').set(set).where('id', '=', id).executeTakeFirst()
      if (Number(result.numUpdatedRows) === 0) return false
      if (change.events !== undefined) {
        await trx.deleteFrom('webhook_endpoint_events').where('endpoint_id', '=', id).execute()
        await trx.insertInto('webhook_endpoint_events').values(change.events.map(event => ({ endpoint_id: id, event_type: event }))).execute()
      }
      return true
    })
    return found ? await this.getEndpoint(id) : undefined
  }

  /** The new secret signs from now on; the current one beside it for `overlapMs`. */
  async rotateSecret (id: string, secret: string, overlapMs: number): Promise<Endpoint | undefined> {
    const now = this.now()
    const result = await this.db.updateTable('webhook_endpoints')
      .set(eb => ({ previous_secret: eb.ref('secret'), previous_secret_expires_at: now + overlapMs, secret, updated_at: now }))
      .where('id', '=', id).executeTakeFirst()
    return Number(result.numUpdatedRows) === 0 ? undefined : await this.getEndpoint(id)
  }

  /** Deletes the endpoint, its pending deliveries (never sent after this) and its log (cascade). */
  async deleteEndpoint (id: string): Promise<boolean> {
    return await this.db.transaction().execute(async trx => {
      const ids = trx.selectFrom('webhook_deliveries').select('id').where('endpoint_id', '=', id)
      await trx.deleteFrom('webhook_attempts').where('delivery_id', 'in', ids).execute()
      await trx.deleteFrom('webhook_deliveries').where('endpoint_id', '=', id).execute()
      await trx.deleteFrom('webhook_endpoint_events').where('endpoint_id', '=', id).execute()
      const result = await trx.deleteFrom('webhook_endpoints').where('id', '=', id).executeTakeFirst()
      return Number(result.numDeletedRows) > 0
    })
  }

  /** The URL and the secrets in force, for signing; undefined when the endpoint is gone or disabled. */
  async endpointForAttempt (id: string): Promise<EndpointSecrets | undefined> {
    const row = await this.db.selectFrom('webhook_endpoints').select(['url', 'secret', 'previous_secret', 'previous_secret_expires_at'])
      .where('id', '=', id).where('disabled_at', 'is', null).executeTakeFirst()
    if (row === undefined) return undefined
    const secrets = [row.secret]
    if (row.previous_secret !== null && Number(row.previous_secret_expires_at) > this.now()) secrets.push(row.previous_secret)
    return { url: row.url, secrets }
  }

  /**
   * Claims up to `limit` due deliveries for `owner` until `leaseMs` from now: pending, due, not leased (or
   * leased by an instance that stopped renewing: it died), of an enabled endpoint that still exists. On
   * PostgreSQL the candidates are locked FOR UPDATE SKIP LOCKED, so instances claiming together take
   * different rows; on SQLite the one statement is atomic (one writer at a time).
   */
  async claim (owner: string, limit: number, leaseMs: number, skipEndpoints: readonly string[]): Promise<ClaimedDelivery[]> {
    const now = this.now()
    let candidates = this.db.selectFrom('webhook_deliveries as d')
      .innerJoin('webhook_endpoints as w', 'w.id', 'd.endpoint_id')
      .select('d.id')
      .where('d.state', '=', 'pending')
      .where('d.next_attempt_at', '<=', now)
      .where(eb => eb.or([eb('d.lease_until', 'is', null), eb('d.lease_until', '<', now)]))
      .where('w.disabled_at', 'is', null)
      .orderBy('d.next_attempt_at').orderBy('d.id')
      .limit(limit)
    if (skipEndpoints.length > 0) candidates = candidates.where('d.endpoint_id', 'not in', [...skipEndpoints])
    // A read first: an idle poll takes no write lock (on SQLite, an UPDATE would wait for the writer thread's).
    const due = await candidates.execute()
    if (due.length === 0) return []
    const rows = await this.db.updateTable('webhook_deliveries')
      .set({ lease_until: now + leaseMs, leased_by: owner })
      .where('id', 'in', this.postgres ? candidates.forUpdate('d').skipLocked() : due.map(row => row.id))
      // Checked again by the update itself: a row another instance claimed meanwhile is not taken twice.
      .where(eb => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .where('state', '=', 'pending')
      .returning(['id', 'endpoint_id', 'message_id', 'event_type', 'identification_id', 'created_at', 'attempts'])
      .execute()
    return rows.map(row => ({
      id: Number(row.id),
      endpointId: row.endpoint_id,
      messageId: row.message_id,
      eventType: row.event_type as WebhookEventType,
      identificationId: row.identification_id,
      createdAt: Number(row.created_at),
      attempts: Number(row.attempts)
    }))
  }

  /** Gives back a claimed delivery without attempting it (its endpoint is busy on this instance). */
  async release (id: number, owner: string): Promise<void> {
    await this.db.updateTable('webhook_deliveries').set({ lease_until: null, leased_by: null })
      .where('id', '=', id).where('leased_by', '=', owner).execute()
  }

  /** Puts a claimed delivery off until `at` without counting an attempt (its thumbnail is on its way). */
  async postpone (id: number, owner: string, at: number): Promise<void> {
    await this.db.updateTable('webhook_deliveries').set({ lease_until: null, leased_by: null, next_attempt_at: at })
      .where('id', '=', id).where('leased_by', '=', owner).execute()
  }

  /**
   * Records an attempt and what follows: success, a retry at `retryAt`, or failure for good; and the endpoint's
   * streak (last success, failing since), disabling it with `disable` (410 Gone, five days failing).
   * False when the claim was lost meanwhile (the endpoint deleted, or the lease expired and another took it).
   * An attempt always counts: if the database refuses its details (the receiver's reply, made storable, still
   * refused), it is recorded without them, then without its row; never left unrecorded to be sent again for ever.
   * `detailsRefused`: the driver's reason when that happened (for the log).
   */
  async complete (claimed: ClaimedDelivery, owner: string, outcome: CompletedAttempt, disableAfterFailingMs: number):
  Promise<{ recorded: boolean, disabled: string | null, detailsRefused?: Record<string, string | number> }> {
    try {
      return await this.#complete(claimed, owner, outcome, disableAfterFailingMs, outcome.attempt)
    } catch (err) {
      const refused = classifyWriteError(err)
      if (!refused.data) throw err // the database is unreachable: the lease expires and the attempt is made again
      const bare = { ...outcome.attempt, response: null, error: 'The attempt was made; its details could not be stored.' }
      try {
        return { ...await this.#complete(claimed, owner, outcome, disableAfterFailingMs, bare), detailsRefused: refused.reason }
      } catch (again) {
        if (!classifyWriteError(again).data) throw again
        return { ...await this.#complete(claimed, owner, outcome, disableAfterFailingMs, null), detailsRefused: refused.reason }
      }
    }
  }

  async #complete (claimed: ClaimedDelivery, owner: string, outcome: CompletedAttempt, disableAfterFailingMs: number,
    attempt: Omit<Attempt, 'attempt'> | null): Promise<{ recorded: boolean, disabled: string | null }> {
    const now = this.now()
    return await this.db.transaction().execute(async trx => {
      const set: Partial<WebhookDeliveriesTable> = { attempts: claimed.attempts + 1, lease_until: null, leased_by: null }
      if (outcome.result === 'retry') Object.assign(set, { next_attempt_at: outcome.retryAt ?? now })
      else Object.assign(set, { state: outcome.result, completed_at: now })
      const updated = await trx.updateTable('webhook_deliveries').set(set as never)
        .where('id', '=', claimed.id).where('leased_by', '=', owner).where('attempts', '=', claimed.attempts)
        .executeTakeFirst()
      if (Number(updated.numUpdatedRows) === 0) return { recorded: false, disabled: null }
      if (attempt !== null) {
        await trx.insertInto('webhook_attempts').values({
          delivery_id: claimed.id,
          attempt: claimed.attempts + 1,
          started_at: attempt.startedAt.getTime(),
          duration_ms: attempt.durationMs,
          status: attempt.status,
          error: attempt.error?.slice(0, 500) ?? null,
          response: attempt.response
        }).execute()
      }
      if (outcome.result === 'succeeded') {
        await trx.updateTable('webhook_endpoints').set({ last_success_at: now, failing_since: null })
          .where('id', '=', claimed.endpointId).execute()
        return { recorded: true, disabled: null }
      }
      const endpoint = await trx.selectFrom('webhook_endpoints').select(['failing_since', 'disabled_at'])
        .where('id', '=', claimed.endpointId).executeTakeFirst()
      if (endpoint === undefined) return { recorded: true, disabled: null }
      const failingSince = endpoint.failing_since === null ? outcome.attempt.startedAt.getTime() : Number(endpoint.failing_since)
      let disable = outcome.disable ?? null
      if (disable === null && now - failingSince >= disableAfterFailingMs) {
        disable = `Every delivery failed since ${new Date(failingSince).toISOString()} (at least ${formatDuration(disableAfterFailingMs)}).`
      }
      await trx.updateTable('webhook_endpoints')
        .set(disable !== null && endpoint.disabled_at === null
          ? { failing_since: failingSince, disabled_at: now, disabled_reason: disable }
          : { failing_since: failingSince })
        .where('id', '=', claimed.endpointId).execute()
      return { recorded: true, disabled: endpoint.disabled_at === null ? disable : null }
    })
  }

  /** An endpoint's deliveries, newest first, keyset-paginated on id. */
  async listDeliveries (endpointId: string, first: number, afterId: number | null): Promise<{ rows: Delivery[], hasNextPage: boolean }> {
    let query = this.db.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', endpointId)
    if (afterId !== null) query = query.where('id', '<', afterId)
    const rows = await query.orderBy('id', 'desc').limit(first + 1).execute()
    return { rows: rows.slice(0, first).map(toDelivery), hasNextPage: rows.length > first }
  }

  async getDelivery (id: number): Promise<Delivery | undefined> {
    const row = await this.db.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirst()
    return row === undefined ? undefined : toDelivery(row)
  }

  /** The attempts of a page of deliveries, in one query. */
  async attemptsOfMany (deliveryIds: readonly number[]): Promise<Map<number, Attempt[]>> {
    const byDelivery = new Map<number, Attempt[]>()
    if (deliveryIds.length === 0) return byDelivery
    const rows = await this.db.selectFrom('webhook_attempts').selectAll().where('delivery_id', 'in', [...deliveryIds])
      .orderBy('delivery_id').orderBy('attempt').execute()
    for (const row of rows) {
      const list = byDelivery.get(Number(row.delivery_id)) ?? []
      list.push({
        attempt: row.attempt,
        startedAt: new Date(Number(row.started_at)),
        durationMs: row.duration_ms,
        status: row.status,
        error: row.error,
        response: row.response
      })
      byDelivery.set(Number(row.delivery_id), list)
    }
    return byDelivery
  }

  /** A new delivery of the same event to the same endpoint (the same webhook-id), due now. */
  async redeliver (id: number): Promise<Delivery | undefined> {
    const source = await this.db.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirst()
    if (source === undefined) return undefined
    const inserted = await this.db.insertInto('webhook_deliveries').values({
      endpoint_id: source.endpoint_id,
      message_id: source.message_id,
      event_type: source.event_type,
      identification_id: source.identification_id,
      created_at: source.created_at,
      state: 'pending',
      attempts: 0,
      next_attempt_at: this.now(),
      lease_until: null,
      leased_by: null,
      completed_at: null
    }).returning('id').executeTakeFirstOrThrow()
    return await this.getDelivery(Number(inserted.id))
  }

  /** Deletes finished deliveries (and their attempts) completed before `before`, at most `batch`; how many went. */
  async purgeDeliveries (before: number, batch: number): Promise<number> {
    const ids = (await this.db.selectFrom('webhook_deliveries').select('id')
      .where('state', '!=', 'pending').where('completed_at', '<', before).limit(batch).execute()).map(row => row.id)
    if (ids.length === 0) return 0
    await this.db.transaction().execute(async trx => {
      await trx.deleteFrom('webhook_attempts').where('delivery_id', 'in', ids).execute()
      await trx.deleteFrom('webhook_deliveries').where('id', 'in', ids).execute()
    })
    return ids.length
  }

  async countPending (): Promise<number> {
    const row = await this.db.selectFrom('webhook_deliveries').select(eb => eb.fn.countAll().as('n'))
      .where('state', '=', 'pending').executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /** Endpoints that receive events now: while there is one, answers wait for their records (and outbox rows). */
  async countEnabled (): Promise<number> {
    const row = await this.db.selectFrom('webhook_endpoints').select(eb => eb.fn.countAll().as('n'))
      .where('disabled_at', 'is', null).executeTakeFirstOrThrow()
    return Number(row.n)
  }

  async countDisabled (): Promise<number> {
    const row = await this.db.selectFrom('webhook_endpoints').select(eb => eb.fn.countAll().as('n'))
      .where('disabled_at', 'is not', null).executeTakeFirstOrThrow()
    return Number(row.n)
  }
}

function toDelivery (row: {
  id: number,
  endpoint_id: string,
  message_id: string,
  event_type: string,
  identification_id: string,
  created_at: number,
  state: string,
  attempts: number,
  next_attempt_at: number,
  completed_at: number | null
}): Delivery {
  return {
    id: String(row.id),
    endpointId: row.endpoint_id,
    messageId: row.message_id,
    eventType: row.event_type as WebhookEventType,
    identificationId: row.identification_id,
    createdAt: new Date(Number(row.created_at)),
    state: row.state as Delivery['state'],
    attemptCount: Number(row.attempts),
    nextAttemptAt: row.state === 'pending' ? new Date(Number(row.next_attempt_at)) : null,
    completedAt: date(row.completed_at)
  }
}

function formatDuration (ms: number): string {
  const s = Math.round(ms / 1000)
  if (s % 86_400 === 0) return `${s / 86_400} days`
  if (s % 3600 === 0) return `${s / 3600} hours`
  return `${s} seconds`
}
