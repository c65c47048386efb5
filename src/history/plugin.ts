// History as a capability: opens the database (migrating it under a lock), records every
// identification from the identification events, answers repeated questions from the result cache,
// purges old records, and decorates `app.history` for the GraphQL resolvers. HISTORY=off: `app.history` is null.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppServices } from '../services.ts'
import type { AnswerCache } from '../identification/types.ts'
import { cacheIdentityOf } from '../vision/types.ts'
import { AppError, StorageUnavailableError } from '../errors.ts'
import type { HistoryConfig } from './config.ts'
import { migrateToLatest, openDatabase } from './database.ts'
import { HistoryStore } from './store.ts'
import { HistoryRecorder } from './recorder.ts'
import { recordOfCompleted, recordOfFailed } from './from-events.ts'
import type { HistoryRecord } from './records.ts'
import { createResultCache } from './result-cache.ts'
import { retentionWorker } from './retention.ts'

export interface History {
  config: HistoryConfig
  dialect: 'sqlite' | 'postgres'
  store: HistoryStore
  recorder: HistoryRecorder
  /** Stores a thumbnail (off the request thread on SQLite). */
  saveThumbnail (id: string, jpeg: Uint8Array, createdAt: Date): Promise<void>
  /** The result cache for the identification flow; null when RESULT_CACHE_TTL_S=0. */
  answers: AnswerCache | null
  /**
   * Runs a history query; any database failure becomes STORAGE_UNAVAILABLE (503), logged once here with
   * its cause, so that a resolver never shows a driver's message (it may name hosts or users).
   */
  query<T> (run: (store: HistoryStore) => Promise<T>): Promise<T>
  /**
   * While `needed()` says so, an identification's answer waits (at most DURABLE_WAIT_MS) until its record is
   * written: webhooks' outbox rows are written with it, so a crash after the answer loses no event.
   */
  writeBeforeAnswering (needed: () => boolean): void
  /**
   * Read-your-writes: while this instance still holds the caller's record `id` unwritten (its answer has just
   * gone), waits for it (at most DURABLE_WAIT_MS), so that reading or deleting it right after the answer finds it.
   * `callerId` null: whoever's (ReadAll).
   */
  recordWritten (id: string, callerId: string | null): Promise<void>
}

/** The longest an answer waits for its record (a database that is down is not waited for at all). */
export const DURABLE_WAIT_MS = 3_000

declare module 'fastify' {
  interface FastifyInstance {
    /** The identification history; null when HISTORY=off. */
    history: History | null
  }
}

const MIGRATION_RETRY_MS = 5_000
/** How long closing waits for buffered records to be written. */
const SHUTDOWN_FLUSH_MS = 5_000

async function historyPlugin (app: FastifyInstance, services: AppServices): Promise<void> {
  const { config: { history: config }, vision, events, metrics } = services
  if (!config.enabled) {
    app.decorate('history', null)
    return
  }
  const log = app.log.child({ component: 'history' })
  let opened: ReturnType<typeof openDatabase>
  try {
    opened = openDatabase(config.database, message => { log.warn({ problem: message }, 'history: SQLite writer problem') })
  } catch (err) {
    // SQLite only (a pool opens lazily): a folder that cannot be written is a configuration error.
    throw new Error(`history: cannot open ${config.database.dialect === 'sqlite' ? config.database.file : 'the database'} ` +
      `(${(err as Error).message}). Set DATA_DIR to a writable folder, DATABASE_URL for PostgreSQL, or HISTORY=off.`, { cause: err })
  }
  const store = new HistoryStore(opened.db)
  // Records and thumbnails: through SQLite's writer thread, or the PostgreSQL pool.
  const writes = opened.writer ?? store

  // The schema first. When the database cannot be reached at start-up the service starts anyway,
  // degraded, and keeps trying: identifications must not wait for history.
  let migrated = false
  let migrationTimer: NodeJS.Timeout | null = null
  const migrate = async (): Promise<void> => {
    try {
      const applied = await migrateToLatest(opened.db)
      migrated = true
      if (applied.length > 0) log.info({ migrations: applied, dialect: opened.dialect }, 'history: migrations applied')
    } catch (err) {
      log.error({ err }, `history: cannot bring the database schema up to date; retrying in ${MIGRATION_RETRY_MS / 1000} s`)
      migrationTimer = setTimeout(() => { migrationTimer = null; void migrate() }, MIGRATION_RETRY_MS)
      migrationTimer.unref()
    }
  }
  await migrate()

  const recorder = new HistoryRecorder({
    insertMany: async (records) => {
      if (!migrated) throw new Error('history schema not migrated yet')
      await writes.insertMany(records)
    }
  }, config.bufferSize, log, {
    written: () => metrics.history.inc({ result: 'written' }),
    dropped: () => metrics.history.inc({ result: 'dropped' }),
    rejected: () => metrics.history.inc({ result: 'rejected' })
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
      hit: () => metrics.resultCache.inc({ result: 'hit' }),
      miss: () => metrics.resultCache.inc({ result: 'miss' })
    })

  const history: History = {
    config,
    dialect: opened.dialect,
    store,
    recorder,
    answers,
    saveThumbnail: async (id, jpeg, createdAt) => { await writes.saveThumbnail(id, jpeg, createdAt) },
    writeBeforeAnswering: needed => { durable = needed },
    recordWritten: async (id, callerId) => { await recorder.writtenFor(id, callerId, DURABLE_WAIT_MS) },
    async query (run) {
      if (!migrated) throw new StorageUnavailableError('The history database is unavailable; identifications still work. Try again later.', 5)
      try {
        return await run(store)
      } catch (err) {
        if (err instanceof AppError) throw err // one of ours (BAD_USER_INPUT from a cursor, ...)
        log.error({ err }, 'history: query failed')
        throw new StorageUnavailableError('The history database is unavailable; identifications still work. Try again later.', 5, { cause: err })
      }
    }
  }
  app.decorate('history', history)
  if (answers !== null) app.identification.useAnswers(answers)

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
    start: () => {},
    stop: async () => {
      if (migrationTimer !== null) clearTimeout(migrationTimer)
      await recorder.stop(SHUTDOWN_FLUSH_MS)
      await opened.close() // here, after the last records are written
    },
    // Degraded, not unready: identifications go on while history waits for its database. A record refused for its
    // data is set aside (and counted) without degrading anything: the database is up.
    degraded: () => !migrated || recorder.failing
  })
  app.workers.register(retentionWorker(store, config, log, () => migrated))
}

export default fp(historyPlugin, { name: 'history', fastify: '5.x', dependencies: ['workers', 'identification'] })
