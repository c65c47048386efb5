// Every query history makes, written once for SQLite and PostgreSQL (Kysely). A record's rows (the
// identification, its filter keys, its usage, and other features' rows through a RecordHook) are written in one transaction.
import { type ExpressionBuilder, type Kysely, sql } from 'kysely'
import type { HistoryTables, UsageDailyTable } from './tables.ts'
import { filterKeys, fromRow, OK, toRow, type HistoryRecord, type StoredIdentification } from './records.ts'
import type { Position } from './cursor.ts'
import type { ListFilter, RecordedOutcome, RecordHook, UsageGrouping, UsageTotals, WrittenRecord } from './types.ts'

export type { ListFilter, UsageGrouping, UsageTotals }

const DAY_MS = 86_400_000

/** Keyset paging on identifications, newest first: the rows after `after` in (created_at, id) order. */
function olderThan (after: Position) {
  return (eb: ExpressionBuilder<HistoryTables, 'identifications'>) => eb.or([
    eb('created_at', '<', after.createdAt),
    eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])
  ])
}

export class HistoryStore {
  readonly db: Kysely<HistoryTables>
  /** Other features' rows, written in each batch's transaction (onRecordTransaction); read at each batch. */
  readonly #hooks: readonly RecordHook[]

  constructor (db: Kysely<HistoryTables>, hooks: readonly RecordHook[] = []) {
    this.db = db
    this.#hooks = hooks
  }

  async insert (record: HistoryRecord): Promise<void> {
    await this.insertMany([record])
  }

  /**
   * Writes records in one transaction of a few statements, however many there are (the recorder writes what
   * waits in its buffer as one batch). A record already written (a batch retried after a lost reply) changes
   * nothing: only the rows the insert returns get filter keys and count in usage.
   */
  async insertMany (records: readonly HistoryRecord[]): Promise<void> {
    if (records.length === 0) return
    await this.db.transaction().execute(async trx => {
      const inserted = await trx.insertInto('identifications')
        .values(records.map(record => ({
          ...toRow(record),
          // Its thumbnail may have been stored first (the record waited in the buffer while the database was down).
          has_thumbnail: sql<number>`(select count(*) from thumbnails where identification_id = ${record.id})`
        })))
        .onConflict(oc => oc.column('id').doNothing())
        .returning('id')
        .execute()
      const fresh = new Set(inserted.map(row => row.id))
      const written = records.filter(record => fresh.has(record.id))
      if (written.length === 0) return

      const categoryRows = []
      const makeRows = []
      const pairRows = []
      const usage = new Map<string, UsageDailyTable>()
      for (const record of written) {
        const base = { identification_id: record.id, caller_id: record.callerId, created_at: record.createdAt.getTime() }
        const { categories, makes, pairs } = filterKeys(record.vehicles)
        for (const category of categories) categoryRows.push({ ...base, category })
        for (const make of makes) makeRows.push({ ...base, make_key: make })
        for (const { category, make } of pairs) pairRows.push({ ...base, category, make_key: make })
        // One upsert per (day, caller, model): a statement may not update the same row twice (PostgreSQL).
        const day = Math.floor(base.created_at / DAY_MS)
        const model = record.model ?? ''
        const key = `${day}\n${record.callerId}\n${model}`
        const totals = usage.get(key) ?? {
          day,
          caller_id: record.callerId,
          model,
          identifications: 0,
          failed: 0,
          cached: 0,
          prompt_tokens: 0,
          completion_tokens: 0,
          batch_prompt_tokens: 0,
          batch_completion_tokens: 0
        }
        totals.identifications++
        totals.failed += record.outcome === OK ? 0 : 1
        totals.cached += record.cached ? 1 : 0
        totals.prompt_tokens += record.promptTokens
        totals.completion_tokens += record.completionTokens
        // A Global Batch's tokens also counted apart: usage prices them at the batch prices.
        if (record.batch === true) {
          totals.batch_prompt_tokens += record.promptTokens
          totals.batch_completion_tokens += record.completionTokens
        }
        usage.set(key, totals)
      }
      if (categoryRows.length > 0) await trx.insertInto('identification_categories').values(categoryRows).execute()
      if (makeRows.length > 0) await trx.insertInto('identification_makes').values(makeRows).execute()
      if (pairRows.length > 0) await trx.insertInto('identification_vehicles').values(pairRows).execute()
      await trx.insertInto('usage_daily')
        .values([...usage.values()])
        .onConflict(oc => oc.columns(['day', 'caller_id', 'model']).doUpdateSet(eb => ({
          identifications: eb('usage_daily.identifications', '+', eb.ref('excluded.identifications')),
          failed: eb('usage_daily.failed', '+', eb.ref('excluded.failed')),
          cached: eb('usage_daily.cached', '+', eb.ref('excluded.cached')),
          prompt_tokens: eb('usage_daily.prompt_tokens', '+', eb.ref('excluded.prompt_tokens')),
          completion_tokens: eb('usage_daily.completion_tokens', '+', eb.ref('excluded.completion_tokens')),
          batch_prompt_tokens: eb('usage_daily.batch_prompt_tokens', '+', eb.ref('excluded.batch_prompt_tokens')),
          batch_completion_tokens: eb('usage_daily.batch_completion_tokens', '+', eb.ref('excluded.batch_completion_tokens'))
        })))
        .execute()
      const done: WrittenRecord[] = written.map(record => ({
        id: record.id,
        ok: record.outcome === OK,
        outcome: record.outcome,
        createdAt: record.createdAt.getTime(),
        bulkJobId: record.bulkJobId ?? null,
        promptTokens: record.promptTokens,
        completionTokens: record.completionTokens
      }))
      for (const hook of this.#hooks) await hook.kysely(trx, done)
    })
  }

  /** A successful identification by id; only the caller's own unless callerId is null (ReadAll). */
  async get (id: string, callerId: string | null): Promise<StoredIdentification | undefined> {
    let query = this.db.selectFrom('identifications').selectAll().where('id', '=', id).where('outcome', '=', OK).where('deleted', '=', 0)
    if (callerId !== null) query = query.where('caller_id', '=', callerId)
    const row = await query.executeTakeFirst()
    return row === undefined ? undefined : fromRow(row)
  }

  /** Any recorded identification (success or failure), whoever's; undefined when absent or withdrawn. */
  async getRecord (id: string): Promise<RecordedOutcome | undefined> {
    const row = await this.db.selectFrom('identifications').selectAll().where('id', '=', id).executeTakeFirst()
    if (row === undefined || row.deleted === 1) return undefined
    if (row.outcome === OK) return { ok: true, identification: fromRow(row) }
    return {
      ok: false,
      failure: {
        id: row.id,
        callerId: row.caller_id,
        code: row.outcome,
        language: row.language,
        backend: row.backend,
        durationMs: row.duration_ms,
        createdAt: new Date(Number(row.created_at))
      }
    }
  }

  /**
   * Newest first, keyset-paginated on (created_at, id). A category or make filter is driven by its own
   * table's index (category, [caller,] created_at, id), so a page costs the same on page 1 and page 10,000.
   */
  async list (filter: ListFilter, first: number, after: Position | null): Promise<{ rows: StoredIdentification[], hasNextPage: boolean }> {
    const ids = await this.#pageIds(filter, first + 1, after)
    const hasNextPage = ids.length > first
    const pageIds = ids.slice(0, first)
    if (pageIds.length === 0) return { rows: [], hasNextPage: false }
    const rows = await this.db.selectFrom('identifications').selectAll().where('id', 'in', pageIds).execute()
    const byId = new Map(rows.map(row => [row.id, row]))
    return { rows: pageIds.flatMap(id => { const row = byId.get(id); return row === undefined ? [] : [fromRow(row)] }), hasNextPage }
  }

  async #pageIds (filter: ListFilter, limit: number, after: Position | null): Promise<string[]> {
    const from = filter.from?.getTime()
    const to = filter.to?.getTime()
    const make = filter.make ?? null
    if (filter.bulkJobId != null) return await this.#bulkJobPageIds(filter.bulkJobId, filter, limit, after)
    if (filter.category != null || make !== null) {
      // Drive from the table whose index answers the filter: (category, make) pairs, categories, or makes.
      const category = filter.category ?? null
      let query = category !== null && make !== null
        ? this.db.selectFrom('identification_vehicles as k').where('k.category', '=', category).where('k.make_key', '=', make)
        : category !== null
          ? this.db.selectFrom('identification_categories as k').where('k.category', '=', category)
          : this.db.selectFrom('identification_makes as k').where('k.make_key', '=', make as string)
      if (filter.callerId !== null) query = query.where('k.caller_id', '=', filter.callerId)
      if (from !== undefined) query = query.where('k.created_at', '>=', from)
      if (to !== undefined) query = query.where('k.created_at', '<', to)
      if (after !== null) {
        query = query.where(eb => eb.or([
          eb('k.created_at', '<', after.createdAt),
          eb.and([eb('k.created_at', '=', after.createdAt), eb('k.identification_id', '<', after.id)])
        ]))
      }
      const rows = await query.select('k.identification_id as id')
        .orderBy('k.created_at', 'desc').orderBy('k.identification_id', 'desc').limit(limit).execute()
      return rows.map(row => row.id)
    }
    let query = this.db.selectFrom('identifications').select('id').where('outcome', '=', OK).where('deleted', '=', 0)
    if (filter.callerId !== null) query = query.where('caller_id', '=', filter.callerId)
    if (from !== undefined) query = query.where('created_at', '>=', from)
    if (to !== undefined) query = query.where('created_at', '<', to)
    if (after !== null) query = query.where(olderThan(after))
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute()
    return rows.map(row => row.id)
  }

  /** A bulk job's successful identifications, driven by (bulk_job_id, created_at, id); other filters apply to the rows. */
  async #bulkJobPageIds (bulkJobId: string, filter: ListFilter, limit: number, after: Position | null): Promise<string[]> {
    let query = this.db.selectFrom('identifications').select('id')
      .where('bulk_job_id', '=', bulkJobId).where('outcome', '=', OK).where('deleted', '=', 0)
    if (filter.callerId !== null) query = query.where('caller_id', '=', filter.callerId)
    if (filter.from != null) query = query.where('created_at', '>=', filter.from.getTime())
    if (filter.to != null) query = query.where('created_at', '<', filter.to.getTime())
    if (filter.category != null) {
      const category = filter.category
      query = query.where(eb => eb.exists(eb.selectFrom('identification_categories as k').select('k.identification_id')
        .whereRef('k.identification_id', '=', 'identifications.id').where('k.category', '=', category)))
    }
    if (filter.make != null) {
      const make = filter.make
      query = query.where(eb => eb.exists(eb.selectFrom('identification_makes as k').select('k.identification_id')
        .whereRef('k.identification_id', '=', 'identifications.id').where('k.make_key', '=', make)))
    }
    if (after !== null) query = query.where(olderThan(after))
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute()
    return rows.map(row => row.id)
  }

  /**
   * Withdraws a record: its content (answer, vehicles, image facts, cache key), filter keys and thumbnail are erased
   * at once; the bare row (caller, time, model, tokens) stays for usage until retention purges it.
   * False when there is none the caller may delete.
   */
  async delete (id: string, callerId: string | null): Promise<boolean> {
    return await this.db.transaction().execute(async trx => {
      let query = trx.updateTable('identifications')
        .set({ deleted: 1, answer: null, vehicles: null, image: null, image_sha256: null, cache_key: null, has_thumbnail: 0 })
        .where('id', '=', id).where('outcome', '=', OK).where('deleted', '=', 0)
      if (callerId !== null) query = query.where('caller_id', '=', callerId)
      const result = await query.executeTakeFirst()
      if (Number(result.numUpdatedRows) === 0) return false
      await trx.deleteFrom('identification_categories').where('identification_id', '=', id).execute()
      await trx.deleteFrom('identification_makes').where('identification_id', '=', id).execute()
      await trx.deleteFrom('identification_vehicles').where('identification_id', '=', id).execute()
      await trx.deleteFrom('thumbnails').where('identification_id', '=', id).execute()
      return true
    })
  }

  /** Deletes records older than `before`, at most `batch` of them; returns how many went. */
  async purge (before: Date, batch: number): Promise<number> {
    const cutoff = before.getTime()
    const ids = (await this.db.selectFrom('identifications').select('id').where('created_at', '<', cutoff).limit(batch).execute()).map(row => row.id)
    if (ids.length === 0) return 0
    await this.db.transaction().execute(async trx => {
      await trx.deleteFrom('identification_categories').where('identification_id', 'in', ids).execute()
      await trx.deleteFrom('identification_makes').where('identification_id', 'in', ids).execute()
      await trx.deleteFrom('identification_vehicles').where('identification_id', 'in', ids).execute()
      await trx.deleteFrom('thumbnails').where('identification_id', 'in', ids).execute()
      await trx.deleteFrom('identifications').where('id', 'in', ids).execute()
    })
    return ids.length
  }

  /**
   * Deletes thumbnails older than `before` by their own time, at most `batch` of them; returns how many went.
   * Those of purged records went with them; this finds the ones whose record was never written (dropped from a
   * full buffer, lost in a crash), which no record leads to.
   */
  async purgeThumbnails (before: Date, batch: number): Promise<number> {
    const old = this.db.selectFrom('thumbnails').select('identification_id').where('created_at', '<', before.getTime()).limit(batch)
    const result = await this.db.deleteFrom('thumbnails').where('identification_id', 'in', old).executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  /**
   * Usage between from and to: whole UTC days from the daily totals, the partial days at either end
   * from the records themselves (so that a day's figures do not need a scan of that day, but an hour's range is exact).
   */
  async usage (from: Date, to: Date, callerId: string | null, groupBy: UsageGrouping): Promise<UsageTotals[]> {
    const start = from.getTime()
    const end = to.getTime()
    if (end <= start) return []
    const firstWholeDay = Math.ceil(start / DAY_MS)
    const endWholeDay = Math.floor(end / DAY_MS)
    const totals = new Map<string, UsageTotals>()
    const add = (key: string, row: Omit<UsageTotals, 'key'>) => {
      const total = totals.get(key) ?? {
        key, identifications: 0, failed: 0, cached: 0, promptTokens: 0, completionTokens: 0, batchPromptTokens: 0, batchCompletionTokens: 0
      }
      total.identifications += Number(row.identifications)
      total.failed += Number(row.failed)
      total.cached += Number(row.cached)
      total.promptTokens += Number(row.promptTokens)
      total.completionTokens += Number(row.completionTokens)
      total.batchPromptTokens += Number(row.batchPromptTokens)
      total.batchCompletionTokens += Number(row.batchCompletionTokens)
      totals.set(key, total)
    }
    const keyOf = (day: number, caller: string, model: string) =>
      groupBy === 'DAY' ? new Date(day * DAY_MS).toISOString().slice(0, 10) : groupBy === 'CALLER' ? caller : model

    if (firstWholeDay < endWholeDay) {
      // Grouped in SQL: one row per bucket, however many days × callers × models the range spans.
      const column = groupBy === 'DAY' ? 'day' : groupBy === 'CALLER' ? 'caller_id' : 'model'
      let query = this.db.selectFrom('usage_daily')
        .select(eb => [
          eb.ref(column).as('bucket'),
          eb.fn.sum('identifications').as('identifications'),
          eb.fn.sum('failed').as('failed'),
          eb.fn.sum('cached').as('cached'),
          eb.fn.sum('prompt_tokens').as('prompt_tokens'),
          eb.fn.sum('completion_tokens').as('completion_tokens'),
          eb.fn.sum('batch_prompt_tokens').as('batch_prompt_tokens'),
          eb.fn.sum('batch_completion_tokens').as('batch_completion_tokens')
        ])
        .where('day', '>=', firstWholeDay).where('day', '<', endWholeDay)
        .groupBy(column)
      if (callerId !== null) query = query.where('caller_id', '=', callerId)
      for (const row of await query.execute()) {
        add(groupBy === 'DAY' ? keyOf(Number(row.bucket), '', '') : String(row.bucket), {
          identifications: Number(row.identifications),
          failed: Number(row.failed),
          cached: Number(row.cached),
          promptTokens: Number(row.prompt_tokens),
          completionTokens: Number(row.completion_tokens),
          batchPromptTokens: Number(row.batch_prompt_tokens),
          batchCompletionTokens: Number(row.batch_completion_tokens)
        })
      }
    }
    // The partial days at either end, each within one UTC day, summed in SQL (never a day's records in memory).
    const firstMidnight = firstWholeDay * DAY_MS
    const lastMidnight = endWholeDay * DAY_MS
    const edges: Array<[number, number]> = firstMidnight <= lastMidnight ? [[start, firstMidnight], [lastMidnight, end]] : [[start, end]]
    for (const [edgeStart, edgeEnd] of edges) {
      if (edgeEnd <= edgeStart) continue
      let query = this.db.selectFrom('identifications')
        .select(eb => [
          'caller_id',
          'model',
          eb.fn.countAll().as('identifications'),
          eb.fn.sum(eb.case().when('outcome', '=', OK).then(0).else(1).end()).as('failed'),
          eb.fn.sum('cached').as('cached'),
          eb.fn.sum('prompt_tokens').as('prompt_tokens'),
          eb.fn.sum('completion_tokens').as('completion_tokens'),
          eb.fn.sum(eb.case().when('batch', '=', 1).then(eb.ref('prompt_tokens')).else(0).end()).as('batch_prompt_tokens'),
          eb.fn.sum(eb.case().when('batch', '=', 1).then(eb.ref('completion_tokens')).else(0).end()).as('batch_completion_tokens')
        ])
        .where('created_at', '>=', edgeStart).where('created_at', '<', edgeEnd)
        .groupBy(['caller_id', 'model'])
      if (callerId !== null) query = query.where('caller_id', '=', callerId)
      const day = Math.floor(edgeStart / DAY_MS)
      for (const row of await query.execute()) {
        add(keyOf(day, row.caller_id, row.model ?? ''), {
          identifications: Number(row.identifications),
          failed: Number(row.failed),
          cached: Number(row.cached),
          promptTokens: Number(row.prompt_tokens),
          completionTokens: Number(row.completion_tokens),
          batchPromptTokens: Number(row.batch_prompt_tokens),
          batchCompletionTokens: Number(row.batch_completion_tokens)
        })
      }
    }
    return [...totals.values()].sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  }

  /** The newest successful, model-made answer to the same question since `since`; the caller's own unless callerId is null. */
  async findCached (cacheKey: string, since: Date, callerId: string | null): Promise<StoredIdentification | undefined> {
    let query = this.db.selectFrom('identifications').selectAll()
      .where('cache_key', '=', cacheKey).where('created_at', '>=', since.getTime()).where('outcome', '=', OK).where('cached', '=', 0)
      .where('deleted', '=', 0)
    if (callerId !== null) query = query.where('caller_id', '=', callerId)
    const row = await query.orderBy('created_at', 'desc').limit(1).executeTakeFirst()
    return row === undefined ? undefined : fromRow(row)
  }

  async saveThumbnail (id: string, jpeg: Uint8Array, createdAt: Date): Promise<void> {
    await this.db.transaction().execute(async trx => {
      // A write first: SQLite then takes the write lock, waiting its busy timeout for another writer (the webhook
      // worker's on the request thread's connection). Read first, the transaction held a snapshot that could not be
      // upgraded once another connection had written: "database is locked" at once, and the thumbnail was lost.
      await trx.updateTable('identifications').set({ has_thumbnail: 1 }).where('id', '=', id).where('deleted', '=', 0).execute()
      // A photo withdrawn while its thumbnail was being made keeps none.
      const withdrawn = await trx.selectFrom('identifications').select('id').where('id', '=', id).where('deleted', '=', 1).executeTakeFirst()
      if (withdrawn !== undefined) return
      await trx.insertInto('thumbnails').values({ identification_id: id, jpeg, created_at: createdAt.getTime() })
        .onConflict(oc => oc.column('identification_id').doNothing()).execute()
    })
  }

  async getThumbnail (id: string): Promise<Buffer | undefined> {
    const row = await this.db.selectFrom('thumbnails').select('jpeg').where('identification_id', '=', id).executeTakeFirst()
    return row === undefined ? undefined : Buffer.from(row.jpeg)
  }

  async purgeExpiredIdempotencyKeys (now: Date): Promise<void> {
    await this.db.deleteFrom('idempotency_keys').where('expires_at', '<', now.getTime()).execute()
  }

  /** A trivial query: is the database answering? */
  async ping (): Promise<void> {
    await sql`select 1`.execute(this.db)
  }
}
