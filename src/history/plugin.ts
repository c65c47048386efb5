// History as a capability: hands its migrations to app.database, records every identification from the
// identification events (with other features' rows in the same transaction: onRecordTransaction), answers
// repeated questions from the result cache, purges old records, and decorates `app.history` for the GraphQL
// resolvers. HISTORY=off: `app.history` is null.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { IdentificationEvents } from '../identification/events.ts'
import type { Metrics } from '../metrics/registry.ts'
import { cacheIdentityOf, type VisionService } from '../vision/types.ts'
import type { HistoryConfig } from './config.ts'
import type { History, HistoryInternals, RecordHook } from './public.ts'
import { HISTORY_MIGRATIONS } from './migrations/index.ts'
import type { HistoryTables } from './tables.ts'
import { HistoryStore } from './store.ts'
import { startSqliteWriter } from './sqlite-writer.ts'
import { HistoryRecorder } from './recorder.ts'
import { recordOfCompleted, recordOfFailed } from './from-events.ts'
import type { HistoryRecord } from './records.ts'
import { createResultCache } from './result-cache.ts'
import { retentionWorker } from './retention.ts'
import { historyGraphql } from './graphql.ts'
import { idempotencyHeader } from './idempotency-header.ts'
import { historyMetrics } from './metrics.ts'

const INTERNALS = Symbol('history internals')

/** For tests: the store (its `db` over every table), the recorder, the result cache, behind `app.history`. */
export function historyInternals (history: History): HistoryInternals {
  const internals = (history as History & { [INTERNALS]?: HistoryInternals })[INTERNALS]
  if (internals === undefined) throw new Error('not the history plugin\'s app.history')
  return internals
}

/** The longest an answer waits for its record (a database that is down is not waited for at all). */
export const DURABLE_WAIT_MS = 3_000

/** How long closing waits for buffered records to be written. */
const SHUTDOWN_FLUSH_MS = 5_000

export interface HistoryPluginOptions {
  config: HistoryConfig
  /** Anonymous callers have no history in production. */
  production: boolean
  /**
   * The longest an identification can legitimately take (the whole upload, the wait for a slot, the model
   * call): an Idempotency-Key's running claim is trusted at least that long.
   */
  longestIdentificationMs: number
  /** Its cache identity keys the result cache. */
  vision: VisionService
  events: IdentificationEvents
  metrics: Metrics
}

async function historyPlugin (app: FastifyInstance, services: HistoryPluginOptions): Promise<void> {
  const { config, production, longestIdentificationMs, vision, events, metrics } = services
  // The same schema, metrics and Idempotency-Key handling whether history is on or off (its fields then fail).
  const counts = historyMetrics(metrics)
  app.graphqlRegistry.add(historyGraphql({ production }))
  const database = app.database
  if (!config.enabled || database === null) {
    app.decorate('history', null)
    app.identification.around(idempotencyHeader(null, longestIdentificationMs))
    return
  }
  const log = app.log.child({ component: 'history' })
  database.registerMigrations('history', HISTORY_MIGRATIONS)
  const hooks: RecordHook[] = []
  let started = false
  const store = new HistoryStore(database.db.withTables<HistoryTables>(), hooks)
  // Records and thumbnails: through SQLite's writer thread (its own connection), or the PostgreSQL pool.
  const writer = database.sqlite === null
    ? null
    : startSqliteWriter(database.sqlite.raw, database.sqlite.file,
      message => { log.warn({ problem: message }, 'history: SQLite writer problem') },
      () => hooks.map(hook => hook.sqliteModule.href))
  const writes = writer ?? store
  const migrated = (): boolean => database.ready()

  const recorder = new HistoryRecorder({
    insertMany: async (records) => {
      if (!migrated()) throw new Error('history schema not migrated yet')
      await writes.insertMany(records)
    },
    // Does the database answer at all? (SQLite: the same file, from the request thread's connection.)
    probe: async () => {
      if (!migrated()) throw new Error('history schema not migrated yet')
      await store.ping()
    }
  }, config.bufferSize, log, {
    written: () => counts.records.inc({ result: 'written' }),
    dropped: () => counts.records.inc({ result: 'dropped' }),
    rejected: () => counts.records.inc({ result: 'rejected' })
  })
  metrics.gauge('agrivision_history_buffered_records', 'History records waiting to be written.', () => recorder.pending)
  let durable: () => boolean = () => false
  const keep = async (record: HistoryRecord): Promise<void> => {
    if (durable()) await recorder.recordDurably(record, DURABLE_WAIT_MS)
    else recorder.record(record)
  }
  events.onDurable('completed', async event => { await keep(recordOfCompleted(event)) })
  events.onDurable('failed', async event => { await keep(recordOfFailed(event)) })

  const answers = config.resultCache.ttlSeconds === 0
    ? null
    : createResultCache(store, {
      ...config.resultCache,
      // Who answers: every deployment of the list (the same model, deployed several times), so an answer
      // from any of them serves the others; another list is another model.
      answeredBy: cacheIdentityOf(vision)
    }, log, {
      hit: () => counts.resultCache.inc({ result: 'hit' }),
      miss: () => counts.resultCache.inc({ result: 'miss' })
    })

  const history: History = {
    prices: config.prices,
    batchPrices: config.batchPrices,
    get: async (id, callerId) => await database.query(() => store.get(id, callerId)),
    getRecord: async id => await database.query(() => store.getRecord(id)),
    list: async (filter, first, after) => await database.query(() => store.list(filter, first, after)),
    usage: async (from, to, callerId, groupBy) => await database.query(() => store.usage(from, to, callerId, groupBy)),
    delete: async (id, callerId) => await database.query(() => store.delete(id, callerId)),
    getThumbnail: async id => await database.query(() => store.getThumbnail(id)),
    saveThumbnail: async (id, jpeg, createdAt) => { await writes.saveThumbnail(id, jpeg, createdAt) },
    flushed: async () => { await recorder.flushed() },
    writeBeforeAnswering: needed => { durable = needed },
    recordWritten: async (id, callerId, maxWaitMs = DURABLE_WAIT_MS) =>
      await recorder.writtenFor(id, callerId, maxWaitMs),
    onRecordTransaction: hook => {
      if (started) throw new Error(`history: record hook ${hook.name} added after start-up`)
      hooks.push(hook)
    }
  }
  Object.defineProperty(history, INTERNALS, { value: { dialect: database.dialect, store, recorder, answers } satisfies HistoryInternals })
  app.decorate('history', history)
  if (answers !== null) app.identification.useAnswers(answers)
  app.identification.around(idempotencyHeader({ history, database }, longestIdentificationMs))

  // Records first. This hook runs once the server has closed (every in-flight request answered) and before the
  // workers stop (webhooks and thumbnails wait seconds each for their own work): what the last answers left in the
  // buffer is written before anything else can eat into SHUTDOWN_GRACE_MS. The worker's stop writes what is left.
  app.addHook('onClose', async () => {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([recorder.flushed(), new Promise<void>(resolve => { timer = setTimeout(resolve, SHUTDOWN_FLUSH_MS) })])
    clearTimeout(timer)
  })
  app.workers.register({
    name: 'history',
    start: () => { started = true },
    stop: async () => {
      await recorder.stop(SHUTDOWN_FLUSH_MS)
      await writer?.close() // here, after the last records are written (its last checkpoint takes them all)
    },
    // Degraded, not unready: identifications go on while history waits for its database. A record refused for its
    // data is set aside (and counted) without degrading anything: the database is up.
    degraded: () => !migrated() || recorder.failing
  })
  app.workers.register(retentionWorker(store, config, log, migrated))
}

export default fp(historyPlugin, { name: 'history', fastify: '5.x', dependencies: ['workers', 'database', 'identification', 'graphql-registry'] })
