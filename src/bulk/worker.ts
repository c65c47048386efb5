// The bulk worker: claims a due job (a lease, like the webhook outbox's, so that instances sharing a database
// never work one job at once and a killed instance loses its claim when the lease passes), and takes it one step
// further: RECEIVED → PREPARING (each photo through the identification's image pipeline, at
// BULK_PREPARE_CONCURRENCY, its prepared image written to the job's folder) → its mode (ONLINE, GLOBAL_BATCH) →
// COMPLETED once every item's record is written. Everything it needs to go on is in the database: after a
// restart the job resumes where it was (an item answered is one whose identification record exists).
import { randomUUID } from 'node:crypto'
import { rename, writeFile } from 'node:fs/promises'
import pLimit from 'p-limit'
import type { Kysely } from 'kysely'
import type { FastifyBaseLogger } from 'fastify'
import type { History } from '../history/public.ts'
import type { IdentificationService } from '../identification/plugin.ts'
import type { Worker } from '../workers/plugin.ts'
import type { ArchiveLimits } from './archive/zip.ts'
import { openSource, type BulkFiles, type JobSource } from './files.ts'
import { callOf, jobSpecOf, modeContext } from './mode-context.ts'
import type { BulkModeRunner, BulkJobSpec, LowImageInfo } from './modes/mode.ts'
import type { PreparedImage } from '../image/pipeline.ts'
import type { BulkItemRow, BulkJobRow, BulkStore } from './store.ts'
import type { BulkJobStatus, BulkModeName } from './tables.ts'

/** A job's lease: renewed every third of it while worked. */
const LEASE_MS = 60_000
const POLL_MS = 1_000
/** Jobs one instance works at once. */
const JOBS_AT_ONCE = 2
/** Items prepared per page read from the database. */
const PREPARE_PAGE = 100
/** Runs after which items whose record never came (history set it aside) end FAILED. */
const MAX_FINISHING_RUNS = 3
const NOT_HERE_RETRY_MS = 30_000
const PURGE_INTERVAL_MS = 3_600_000
const DAY_MS = 86_400_000

export interface BulkWorkerOptions {
  store: BulkStore
  files: BulkFiles
  identification: IdentificationService
  history: History
  modes: Partial<Record<BulkModeName, BulkModeRunner>>
  archiveLimits: ArchiveLimits
  prepareConcurrency: number
  log: FastifyBaseLogger
  /** The database: its schema is migrated (onReady). */
  database: { onReady: (fn: () => void) => void, dialect: 'sqlite' | 'postgres' }
  /** A job changed status, or (`progress`) may have made progress: bulkJobUpdated. */
  changed?: (jobId: string, status: BulkJobStatus | null, progress: boolean) => void
  /** HISTORY_RETENTION_DAYS: finished jobs older than this are purged (hourly), as their identifications are. */
  retentionDays: number
  /** Rows written in the transaction that completes a job (the webhook outbox's `bulk_job.completed`). */
  completed?: (trx: Kysely<any>, jobId: string, at: number) => Promise<void>
}

export class BulkWorker implements Worker {
  readonly name = 'bulk'
  readonly owner = randomUUID()
  readonly #o: BulkWorkerOptions
  readonly #running = new Map<string, { abort: AbortController, done: Promise<void> }>()
  readonly #finishingRuns = new Map<string, number>()
  #timer: NodeJS.Timeout | null = null
  #purgeTimer: NodeJS.Timeout | null = null
  #claiming: Promise<void> | null = null
  #stopped = false
  /** No job is claimed before the start-up sweep (it removes incoming uploads). */
  #swept = false

  constructor (options: BulkWorkerOptions) {
    this.#o = options
  }

  get running (): number { return this.#running.size }

  start (): void {
    this.#timer = setInterval(() => { this.kick() }, POLL_MS)
    this.#timer.unref()
    this.#purgeTimer = setInterval(() => { void this.#purge() }, PURGE_INTERVAL_MS)
    this.#purgeTimer.unref()
    this.#o.database.onReady(() => {
      // SQLite: one process per file, so a lease found now is a killed process's: its jobs go on at once.
      const leases = this.#o.database.dialect === 'sqlite' ? this.#o.store.clearLeases() : Promise.resolve()
      void leases.then(async () => await this.#o.files.sweep(async ids => await this.#o.store.unfinishedJobs(ids)))
        .then(removed => { if (removed > 0) this.#o.log.info({ removed }, 'bulk: folders of ended jobs removed') })
        .catch(err => { this.#o.log.warn({ err }, 'bulk: could not sweep the jobs\' folders') })
        .finally(() => { this.#swept = true; this.kick(); void this.#purge() })
    })
  }

  async stop (): Promise<void> {
    this.#stopped = true
    if (this.#timer !== null) clearInterval(this.#timer)
    if (this.#purgeTimer !== null) clearInterval(this.#purgeTimer)
    await this.#claiming
    for (const { abort } of this.#running.values()) abort.abort(new Error('stopping'))
    await Promise.all([...this.#running.values()].map(async ({ done }) => { await done }))
  }

  /** Finished jobs past retention (their items and chunks with them), in batches. */
  async #purge (): Promise<void> {
    try {
      const before = Date.now() - this.#o.retentionDays * DAY_MS
      while (!this.#stopped && await this.#o.store.purge(before, 1000) === 1000) await new Promise(resolve => setImmediate(resolve))
    } catch (err) {
      this.#o.log.warn({ err }, 'bulk: retention purge failed; trying again at the next run')
    }
  }

  /** Cancels the job now when this instance works it (its lease is kept until the worker ends it). */
  interrupt (jobId: string): void {
    this.#running.get(jobId)?.abort.abort(new Error('cancelled'))
  }

  /** Looks for due jobs now. */
  kick (): void {
    if (this.#stopped || !this.#swept || this.#claiming !== null) return
    this.#claiming = this.#claim().catch(err => { this.#o.log.warn({ err }, 'bulk: could not claim a job') })
      .finally(() => { this.#claiming = null })
  }

  async #claim (): Promise<void> {
    while (!this.#stopped && this.#running.size < JOBS_AT_ONCE) {
      const job = await this.#o.store.claimJob(this.owner, LEASE_MS, [...this.#running.keys()])
      if (job === undefined) return
      const abort = new AbortController()
      const done = this.#run(job, abort).finally(() => {
        this.#running.delete(job.id)
        this.kick()
      })
      this.#running.set(job.id, { abort, done })
    }
  }

  async #run (row: BulkJobRow, abort: AbortController): Promise<void> {
    const { store, log } = this.#o
    const renew = setInterval(() => {
      void store.renewLease(row.id, this.owner, LEASE_MS).then(kept => {
        if (!kept) abort.abort(new Error('lease lost'))
      }, () => {})
    }, LEASE_MS / 3)
    // A cancel asked on another instance: seen here within a poll. And the job's progress, for bulkJobUpdated.
    const watchCancel = setInterval(() => {
      this.#o.changed?.(row.id, null, true)
      void store.cancelRequested(row.id).then(cancelled => {
        if (cancelled) abort.abort(new Error('cancelled'))
      }, () => {})
    }, POLL_MS)
    let nextRunAt: number | null = Date.now() + POLL_MS
    try {
      nextRunAt = await this.#step(row, abort.signal)
    } catch (err) {
      log.error({ err, job: row.id }, 'bulk: a job step failed; it is tried again')
      nextRunAt = Date.now() + 5_000
    } finally {
      clearInterval(renew)
      clearInterval(watchCancel)
    }
    if (nextRunAt !== null) await store.releaseJob(row.id, this.owner, nextRunAt).catch(() => {})
  }

  /** Takes the job as far as it goes now; when to look again, or null once it has ended. */
  async #step (row: BulkJobRow, signal: AbortSignal): Promise<number | null> {
    const { files } = this.#o
    const job = jobSpecOf(row)
    if (!await files.hasJob(job.id)) return Date.now() + NOT_HERE_RETRY_MS // another instance's folder
    const mode = this.#o.modes[job.mode] ?? this.#o.modes.ONLINE as BulkModeRunner
    const ctx = modeContext(this.#o, job, signal)
    if (row.cancel_requested === 1) return await this.#cancel(job, mode, ctx)

    if (row.status === 'RECEIVED' || row.status === 'PREPARING') {
      if (row.status === 'RECEIVED') await this.#setStatus(job.id, 'PREPARING')
      await this.#prepare(job, signal)
      if (signal.aborted) return await this.#interrupted(job, mode, ctx)
      await this.#setStatus(job.id, job.mode === 'GLOBAL_BATCH' && mode.name === 'GLOBAL_BATCH' ? 'SUBMITTED' : 'RUNNING')
    }
    const step = await mode.run(ctx)
    if (signal.aborted) return await this.#interrupted(job, mode, ctx)
    if (!step.done) return step.nextRunAt
    return await this.#finish(job, mode, ctx)
  }

  async #setStatus (jobId: string, status: BulkJobStatus): Promise<void> {
    await this.#o.store.setStatus(jobId, status)
    this.#o.changed?.(jobId, status, false)
  }

  /** Stopped (the instance closes: again later, here or elsewhere) or cancelled (ended now). */
  async #interrupted (job: BulkJobSpec, mode: BulkModeRunner, ctx: ReturnType<typeof modeContext>): Promise<number | null> {
    if (this.#stopped) return Date.now()
    if (await this.#o.store.cancelRequested(job.id)) return await this.#cancel(job, mode, ctx)
    return Date.now() + POLL_MS // the lease was lost: whoever holds it goes on
  }

  async #cancel (job: BulkJobSpec, mode: BulkModeRunner, ctx: ReturnType<typeof modeContext>): Promise<null> {
    await mode.cancel(ctx).catch(err => { this.#o.log.warn({ err, job: job.id }, 'bulk: the mode could not cancel upstream work') })
    // Answers already given are kept: whatever history still holds is written first.
    await this.#o.history.flushed()
    await this.#o.store.cancelUnfinishedItems(job.id)
    await this.#end(job, mode, ctx, 'CANCELLED')
    return null
  }

  /** Every item has had its outcome announced: once all are written, the job is COMPLETED. */
  async #finish (job: BulkJobSpec, mode: BulkModeRunner, ctx: ReturnType<typeof modeContext>): Promise<number | null> {
    const { store, history, log } = this.#o
    await history.flushed()
    if (await store.unfinishedItems(job.id) > 0) {
      const runs = (this.#finishingRuns.get(job.id) ?? 0) + 1
      this.#finishingRuns.set(job.id, runs)
      if (runs < MAX_FINISHING_RUNS) return Date.now() + POLL_MS // their records may yet come (the database was down)
      // History set their records aside (its database refused them): they will never come.
      for (const status of ['PENDING', 'PREPARED', 'SUBMITTED'] as const) {
        for (const item of await store.itemsWithStatus(job.id, status, 100_000)) await store.failItem(item.id, 'INTERNAL_SERVER_ERROR')
      }
      log.error({ job: job.id }, 'bulk: items whose record was never written end FAILED')
    }
    this.#finishingRuns.delete(job.id)
    await this.#end(job, mode, ctx, 'COMPLETED')
    return null
  }

  async #end (job: BulkJobSpec, mode: BulkModeRunner, ctx: ReturnType<typeof modeContext>, status: BulkJobStatus): Promise<void> {
    await mode.cleanUp(ctx).catch(err => { this.#o.log.warn({ err, job: job.id }, 'bulk: the mode could not clean up') })
    const { completed } = this.#o
    const also = status === 'COMPLETED' && completed !== undefined ? async (trx: Kysely<any>, at: number) => { await completed(trx, job.id, at) } : undefined
    if (await this.#o.store.finishJob(job.id, status, null, also)) this.#o.changed?.(job.id, status, false)
    await this.#o.files.removeJob(job.id)
  }

  /** Prepares every PENDING item (again after a restart: an item prepared but not marked is prepared anew). */
  async #prepare (job: BulkJobSpec, signal: AbortSignal): Promise<void> {
    const { store, files, history } = this.#o
    await files.makeJobDir(job.id)
    const source = await openSource(files, job.id, this.#o.archiveLimits)
    try {
      const limit = pLimit(this.#o.prepareConcurrency)
      let after = -1
      for (;;) {
        const page = await store.itemsWithStatus(job.id, 'PENDING', PREPARE_PAGE, after)
        if (page.length === 0 || signal.aborted) break
        after = Number(page[page.length - 1]?.seq)
        await Promise.all(page.map(item => limit(async () => { await this.#prepareItem(job, item, source, signal) })))
        await history.flushed() // failures announced on this page are written (history's buffer is bounded)
      }
    } finally {
      await source.close()
    }
  }

  async #prepareItem (job: BulkJobSpec, item: BulkItemRow, source: JobSource, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return
    const { identification, files, store } = this.#o
    const call = callOf(job, item.id)
    let image: Buffer
    try {
      image = await source.read(Number(item.entry_index))
    } catch (err) {
      if (!signal.aborted) await identification.failed(call, err, 0) // a bad entry (size, CRC, nested archive): its code
      return
    }
    // ADAPTIVE in GLOBAL_BATCH asks its LOW looks in a first batch: the LOW image is kept too, from the same decode.
    const low = job.detail === 'adaptive' && job.mode === 'GLOBAL_BATCH' && this.#o.modes.GLOBAL_BATCH !== undefined
    let prepared
    try {
      prepared = await identification.prepare(call, image, { signal, low })
    } catch {
      return // announced failed with its code (recorded: the item ends FAILED), or stopping
    }
    const path = files.preparedPath(job.id, item.id)
    if (prepared.low !== undefined) await writeWhole(files.preparedLowPath(job.id, item.id), prepared.low.bytes)
    await writeWhole(path, prepared.sent.bytes)
    await store.markPrepared(item.id, prepared.info, prepared.low === undefined ? null : lowInfoOf(prepared.low))
  }
}

/** Written beside its name, then renamed: a crash leaves no half image under it. */
async function writeWhole (path: string, bytes: Buffer): Promise<void> {
  await writeFile(`${path}.tmp`, bytes, { mode: 0o600 })
  await rename(`${path}.tmp`, path)
}

function lowInfoOf (low: PreparedImage): LowImageInfo {
  return {
    sentMimeType: low.mimeType,
    sentBytes: low.bytes.length,
    sentWidth: low.width,
    sentHeight: low.height,
    estimatedImageTokens: low.estimatedImageTokens
  }
}
