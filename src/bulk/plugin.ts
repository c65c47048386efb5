// Bulk jobs as a feature: hands its migrations to app.database and its item outcomes to history's record
// transaction, its GraphQL part and its upload policy (files to disk, under DATA_DIR/bulk) to the registry, its
// worker to app.workers, and decorates `app.bulk`. Needs history (a job's items are identifications in it); with
// HISTORY=off `app.bulk` is null and its fields fail with STORAGE_UNAVAILABLE (the schema does not change).
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { ANONYMOUS } from '../callers/caller.ts'
import type { RequestedDetail } from '../image/tokens.ts'
import type { VisionService } from '../vision/types.ts'
import type { Confidence } from '../vision/answer-schema.ts'
import type { ArchiveLimits } from './archive/zip.ts'
import { modeOf, type BulkConfig } from './config.ts'
import { createJob } from './create.ts'
import { BulkFiles } from './files.ts'
import { bulkGraphql, MAX_IMAGES } from './graphql.ts'
import { BULK_MIGRATIONS } from './migrations/index.ts'
import { createModes } from './modes/index.ts'
import type { BulkJobs, BulkJobView } from './public.ts'
import { BulkReceiving } from './receive.ts'
import { bulkRecordHook } from './record-hook.ts'
import { BulkStore, type BulkJobRow } from './store.ts'
import type { BulkTables } from './tables.ts'
import { BulkWorker } from './worker.ts'
import { usageOf } from './usage.ts'
import { jobTopic, messageOf, ProgressThrottle } from './updates.ts'
import { decodeJobCursor } from './arguments.ts'

export interface BulkPluginOptions {
  config: BulkConfig
  vision: VisionService
  production: boolean
  /** VISION_LANGUAGE, VISION_IMAGE_DETAIL: the question's defaults. */
  language: string
  detail: RequestedDetail
  /** MAX_UPLOAD_BYTES: the largest photo, in an archive or among `images`. */
  maxUploadBytes: number
  /** HISTORY_RETENTION_DAYS: finished jobs are kept as long as their identifications. */
  retentionDays: number
  /** VISION_MAX_TOKENS: Global Batch lines ask for as many as online calls. */
  maxTokens?: number
  /** VISION_ADAPTIVE_MIN_CONFIDENCE: an ADAPTIVE job's LOW answers below it get a HIGH look (a second batch). */
  adaptiveMinConfidence?: Confidence
}

/** What tests reach behind `app.bulk`. */
export interface BulkInternals {
  store: BulkStore
  worker: BulkWorker
  files: BulkFiles
  receiving: BulkReceiving
}

const INTERNALS = Symbol('bulk internals')

export function bulkInternals (bulk: BulkJobs): BulkInternals {
  const internals = (bulk as BulkJobs & { [INTERNALS]?: BulkInternals })[INTERNALS]
  if (internals === undefined) throw new Error('not the bulk plugin\'s app.bulk')
  return internals
}

function viewOf (row: BulkJobRow): BulkJobView {
  return {
    id: row.id,
    callerId: row.caller_id,
    status: row.status,
    mode: row.mode,
    createdAt: new Date(Number(row.created_at)),
    completedAt: row.completed_at === null ? null : new Date(Number(row.completed_at)),
    code: row.error_code,
    promptTokens: Number(row.prompt_tokens),
    completionTokens: Number(row.completion_tokens)
  }
}

async function bulkPlugin (app: FastifyInstance, options: BulkPluginOptions): Promise<void> {
  const { config, vision, production, maxUploadBytes } = options
  app.graphqlRegistry.add(bulkGraphql({ production, language: options.language, detail: options.detail }))
  const files = new BulkFiles(config.dir)
  const history = app.history
  const database = app.database
  if (history === null || database === null) {
    app.decorate('bulk', null)
    return
  }
  const log = app.log.child({ component: 'bulk' })
  database.registerMigrations('bulk', BULK_MIGRATIONS)
  history.onRecordTransaction(bulkRecordHook)
  const store = new BulkStore(database.db.withTables<BulkTables>(), database.dialect === 'postgres')
  const query = async <T>(run: () => Promise<T>): Promise<T> => await database.query(run)
  const archiveLimits: ArchiveLimits = {
    maxItems: config.maxItems,
    maxExpandedBytes: config.maxExpandedBytes,
    maxEntryBytes: maxUploadBytes,
    maxCompressionRatio: config.maxCompressionRatio
  }
  const receiving = new BulkReceiving({
    maxActiveJobsPerCaller: config.maxActiveJobsPerCaller,
    maxReceivingBytes: config.maxReceivingBytes,
    minFreeBytes: config.minFreeBytes,
    dir: files.incoming,
    activeJobs: async callerId => await query(() => store.activeJobs(callerId))
  })
  // createBulkJob's files go to disk, never whole in memory; a caller past its jobs or a full disk is refused before any is read.
  app.graphqlRegistry.addUploadPolicy({
    field: 'createBulkJob',
    maxFiles: MAX_IMAGES,
    maxFileBytes: config.maxArchiveBytes, // an image over MAX_UPLOAD_BYTES is a FAILED item (PAYLOAD_TOO_LARGE), as in an archive
    sink: { dir: files.incoming },
    admit: async (request, declared) => {
      const caller = request.caller ?? ANONYMOUS
      return await receiving.admit(caller.id, Math.min(declared ?? config.maxArchiveBytes, config.maxArchiveBytes + 1024 * 1024))
    }
  })

  // bulk_job.completed: one webhook event per job, written in the transaction that completes it.
  const webhooks = app.webhooks
  webhooks?.registerEventType({
    type: 'bulk_job.completed',
    payload: async id => {
      const row = await store.getJob(id, null)
      if (row === undefined) return undefined
      const view = viewOf(row)
      return { ...view, counts: await store.counts(id), usage: usageOf(view, priceOf(view.mode)) }
    }
  })
  // bulkJobUpdated: each status change at once, progress at most once a second per job.
  const throttle = new ProgressThrottle()
  const publish = async (jobId: string, progress: boolean): Promise<void> => {
    const row = await store.getJob(jobId, null)
    if (row === undefined) return
    if (progress) {
      const counts = await store.counts(jobId)
      if (!throttle.due(jobId, `${row.status} ${counts.pending} ${counts.succeeded} ${counts.failed} ${counts.cancelled}`)) return
    }
    app.subscriptions.publish(jobTopic(jobId), messageOf(viewOf(row)))
  }
  const priceOf = (mode: BulkJobView['mode']) => mode === 'GLOBAL_BATCH' ? config.batchPrices : history.prices
  const worker = new BulkWorker({
    store,
    files,
    identification: app.identification,
    history,
    modes: createModes({
      config,
      vision,
      log,
      maxTokens: options.maxTokens,
      ...(options.adaptiveMinConfidence === undefined ? {} : { adaptiveMinConfidence: options.adaptiveMinConfidence })
    }),
    archiveLimits,
    prepareConcurrency: config.prepareConcurrency,
    retentionDays: options.retentionDays,
    log,
    database,
    changed: (jobId, _status, progress) => {
      void publish(jobId, progress).catch(err => { log.warn({ err, job: jobId }, 'bulk: could not publish the job\'s update') })
    },
    ...(webhooks === null ? {} : { completed: async (trx, jobId, at) => { await webhooks.enqueue(trx, 'bulk_job.completed', jobId, at) } })
  })
  app.workers.register(worker)

  const bulk: BulkJobs & { [INTERNALS]: BulkInternals } = {
    [INTERNALS]: { store, worker, files, receiving },
    async create (caller, job) {
      const id = await query(() => createJob({ store, files, archiveLimits }, caller, modeOf(config), job))
      worker.kick()
      return viewOf(await query(() => store.getJob(id, null)) as BulkJobRow)
    },
    async get (id, callerId) {
      const row = await query(() => store.getJob(id, callerId))
      return row === undefined ? undefined : viewOf(row)
    },
    async list (callerId, first, after) {
      const position = after === null ? null : decodeJobCursor(after)
      const { rows, hasNextPage } = await query(() => store.listJobs(callerId, first, position))
      return { rows: rows.map(viewOf), hasNextPage }
    },
    counts: async id => await query(() => store.counts(id)),
    items: async (id, first, afterSeq, status) => await query(() => store.listItems(id, first, afterSeq, status)),
    async cancel (id, callerId) {
      const row = await query(() => store.requestCancel(id, callerId))
      if (row === undefined) return undefined
      worker.interrupt(id)
      worker.kick()
      return viewOf(row)
    },
    priceOf
  }
  app.decorate('bulk', bulk)
}

export default fp(bulkPlugin, { name: 'bulk', fastify: '5.x', dependencies: ['workers', 'database', 'history', 'identification', 'graphql-registry'] })
