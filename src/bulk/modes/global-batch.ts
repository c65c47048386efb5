// GLOBAL_BATCH: a job's prepared photos answered by Azure OpenAI's Global Batch API (../global-batch/). Each run
// takes every chunk of the job one step further, from the chunk's persisted state, so that a restart (or another
// instance) goes on where the last run stopped:
//
//   PREPARED items → JSONL files → chunk recorded WRITTEN with its items SUBMITTED (one transaction)
//   WRITTEN   → upload (adopting a file of the chunk's name already there)               → UPLOADED
//   UPLOADED  → create (adopting a batch carrying the chunk id; quota full: later)      → POLLING
//   POLLING   → retrieve every BULK_POLL_INTERVAL_S until the batch is final            → READING
//   READING   → output and error lines in pages of ≤ 500, each outcome announced and
//               written before the next page (an item answered is no longer SUBMITTED:
//               reading again after a crash skips it)                                   → RETRYING
//   RETRYING  → lines that failed (retryably), that never came, or a batch that failed
//               or expired: once through the online path (online_retry)                → DONE
//
// Exactly once: an item's custom_id goes into one chunk only (its status moves PREPARED → SUBMITTED with the
// chunk's record), a chunk's batch is created once (adopted after a lost reply or a crash), and an item's outcome
// is announced only while it is SUBMITTED.
//
// ADAPTIVE detail (./adaptive-looks.ts): a first batch of LOW looks; the unsure items go PREPARED again at look 2
// (in the page's writes, before the next page) and into a second batch of HIGH looks (custom_id `<id>:high`,
// chunks of look 2), written at the next run.
import { mkdir, readFile, rm } from 'node:fs/promises'
import { exists } from '../files.ts'
import { randomUUID } from 'node:crypto'
import pLimit from 'p-limit'
import { AppError, UpstreamUnavailableError } from '../../errors.ts'
import type { ImageMimeType } from '../../image/mime-types.ts'
import type { Confidence } from '../../vision/answer-schema.ts'
import type { GlobalBatchConfig } from '../config.ts'
import { createBatchClient, isFinalStatus, type BatchClient, type BatchClientOptions } from '../global-batch/client.ts'
import { chunkPath, JsonlWriter, LineTooLargeError, MAX_BYTES_PER_FILE, MAX_LINES_PER_FILE } from '../global-batch/jsonl.ts'
import { readResults, type ItemOutcome, type ResultStats } from '../global-batch/results.ts'
import type { BulkChunk, BulkModeRunner, ModeContext, ModeStep, PreparedItem } from './mode.ts'
import { batchLookOf, customIdOf, highLookAnswered, highLookFailed, inTwoLooks, itemIdOf, lowLookAnswered } from './adaptive-looks.ts'

/** The chunk statuses this mode keeps in bulk_chunks.status. */
export type ChunkStatus = 'WRITTEN' | 'UPLOADED' | 'POLLING' | 'READING' | 'RETRYING' | 'DONE'

export interface GlobalBatchModeOptions {
  batch: GlobalBatchConfig
  /** The process's cached token provider's getToken (the same managed identity as every other Azure call). */
  getToken: () => Promise<string>
  /** VISION_MAX_TOKENS: each line's max_tokens, as online. */
  maxTokens: number
  pollIntervalMs: number
  /** Where a job's JSONL files are written (inside its folder: removed with it). */
  chunkDir: (jobId: string) => string
  /** Online retries at once (the background lane bounds them again). */
  onlineConcurrency: number
  /** VISION_ADAPTIVE_MIN_CONFIDENCE: an ADAPTIVE item's LOW answer below it is asked again at HIGH, in a second batch. */
  adaptiveMinConfidence: Confidence
  /** Tests: smaller files, quicker file polls. */
  maxLinesPerFile?: number
  maxBytesPerFile?: number
  client?: Partial<BatchClientOptions>
}

/** Outcomes announced per page before history is awaited (its buffer is bounded: trap 5). */
const PAGE = 500

export function globalBatchMode (options: GlobalBatchModeOptions): BulkModeRunner {
  const { batch, pollIntervalMs } = options
  const client: BatchClient = createBatchClient({
    endpoint: batch.endpoint,
    apiVersion: batch.apiVersion,
    tokens: { getToken: options.getToken },
    ...options.client
  })

  return {
    name: 'GLOBAL_BATCH',
    async run (ctx) {
      await writeChunks(ctx)
      let nextRunAt = Number.POSITIVE_INFINITY
      for (const chunk of await ctx.chunks.list()) {
        if (ctx.signal.aborted) return { done: false, nextRunAt: Date.now() }
        const at = await advance(ctx, chunk)
        if (at !== null) nextRunAt = Math.min(nextRunAt, at)
      }
      if (ctx.signal.aborted) return { done: false, nextRunAt: Date.now() }
      // ADAPTIVE: LOW answers read in this run sent items back for a HIGH look: their batch is written next run.
      if (ctx.job.detail === 'adaptive' && await hasPrepared(ctx)) return { done: false, nextRunAt: Date.now() }
      return Number.isFinite(nextRunAt) ? { done: false, nextRunAt } : { done: true } satisfies ModeStep
    },
    async cancel (ctx) {
      for (const chunk of await ctx.chunks.list()) {
        if (chunk.status !== 'POLLING' && chunk.status !== 'UPLOADED') continue
        try {
          // UPLOADED: a create may have reached Azure just before a crash, its batch id never stored: found by chunk id.
          const batchId = chunk.batchId ?? (chunk.status === 'UPLOADED' ? (await client.find(chunk.id))?.id : undefined)
          if (batchId === undefined) continue
          await client.cancel(batchId)
        } catch (err) {
          ctx.log.warn({ job: ctx.job.id, chunk: chunk.id, code: codeOf(err) }, 'bulk: Azure did not take the batch\'s cancel')
        }
      }
    },
    async cleanUp (ctx) {
      // Azure keeps files until deleted or expired (500 per resource, 10,000 with an expiry): ours go now.
      for (const chunk of await ctx.chunks.list()) {
        for (const fileId of [chunk.inputFileId, chunk.outputFileId, chunk.errorFileId]) {
          if (fileId === null) continue
          await client.deleteFile(fileId).catch(err => {
            ctx.log.warn({ job: ctx.job.id, chunk: chunk.id, code: codeOf(err) }, 'bulk: a batch file could not be deleted at Azure (it expires by itself)')
          })
        }
      }
    }
  }

  /** Every PREPARED item into JSONL chunks (one set per look); each chunk recorded (its items SUBMITTED) once its file is whole. */
  async function writeChunks (ctx: ModeContext): Promise<void> {
    const dir = options.chunkDir(ctx.job.id)
    const writers = new Map<1 | 2, JsonlWriter>()
    const tooLarge: PreparedItem[] = []
    try {
      for await (const page of ctx.pages(PAGE, 'PREPARED')) {
        if (ctx.signal.aborted) break
        if (writers.size === 0) await mkdir(dir, { recursive: true, mode: 0o700 })
        for (const item of page) {
          const line = batchLookOf(ctx.job, item)
          let writer = writers.get(line.look)
          if (writer === undefined) {
            writer = new JsonlWriter({
              dir,
              deployment: batch.deployment,
              url: client.chatUrl,
              maxTokens: options.maxTokens,
              maxLines: options.maxLinesPerFile ?? MAX_LINES_PER_FILE,
              maxBytes: options.maxBytesPerFile ?? MAX_BYTES_PER_FILE,
              nextChunkId: () => randomUUID()
            })
            writers.set(line.look, writer)
          }
          const image = await readFile(line.path)
          try {
            await writer.add(line.customId, {
              image,
              mimeType: line.mimeType as ImageMimeType,
              detail: line.detail,
              instructions: ctx.job.instructions,
              language: ctx.job.language
            })
          } catch (err) {
            if (!(err instanceof LineTooLargeError)) throw err
            tooLarge.push(item)
          }
        }
      }
      if (writers.size === 0) return
      if (ctx.signal.aborted) { for (const writer of writers.values()) await writer.abort(); return }
      for (const [look, writer] of writers) {
        for (const chunk of await writer.finish()) {
          // The file's custom_ids are its items' ids, or `<id>:high` at look 2: the items are recorded by id.
          const itemIds = chunk.itemIds.map(itemIdOf)
          await ctx.chunks.create({ id: chunk.chunkId, status: 'WRITTEN' satisfies ChunkStatus, lines: chunk.lines, bytes: chunk.bytes, look }, itemIds)
        }
      }
    } catch (err) {
      for (const writer of writers.values()) await writer.abort()
      throw err
    }
    // A photo too large for a batch file (it cannot happen within MAX_UPLOAD_BYTES' bounds): asked online instead.
    for (const item of tooLarge) await ctx.identifyOnline(item).catch(() => {})
  }

  /** Takes a chunk one step (or several) further; when to look at it again, or null once it is done. */
  async function advance (ctx: ModeContext, chunk: BulkChunk): Promise<number | null> {
    const status = chunk.status as ChunkStatus
    try {
      switch (status) {
        case 'WRITTEN': return await upload(ctx, chunk)
        case 'UPLOADED': return await submit(ctx, chunk)
        case 'POLLING': return await poll(ctx, chunk)
        case 'READING': return await read(ctx, chunk)
        case 'RETRYING': return await retry(ctx, chunk)
        case 'DONE': return null
      }
    } catch (err) {
      if (ctx.signal.aborted) return Date.now()
      // Azure or the network failed this step: the chunk stays where it is and is tried again at the next poll.
      ctx.log.warn({ job: ctx.job.id, chunk: chunk.id, step: status, code: codeOf(err) }, 'bulk: a Global Batch step failed; tried again later')
      return Date.now() + pollIntervalMs
    }
    return null
  }

  async function upload (ctx: ModeContext, chunk: BulkChunk): Promise<number | null> {
    const path = chunkPath(options.chunkDir(ctx.job.id), chunk.id)
    let fileId: string
    if (await exists(path)) {
      fileId = (await client.uploadJsonl(path, chunk.id)).id
    } else {
      // The local file is gone (a folder restored without it): the upload may have been made before.
      const found = await client.findFile(chunk.id)
      if (found === null) return await toOnline(ctx, chunk)
      fileId = found.id
    }
    await ctx.chunks.update(chunk.id, { status: 'UPLOADED' satisfies ChunkStatus, input_file_id: fileId })
    return await submit(ctx, { ...chunk, status: 'UPLOADED', inputFileId: fileId })
  }

  async function submit (ctx: ModeContext, chunk: BulkChunk): Promise<number | null> {
    if (chunk.inputFileId === null) return await upload(ctx, chunk)
    let state
    try {
      state = await client.create(chunk.inputFileId, chunk.id)
    } catch (err) {
      if (err instanceof AppError && err.code === 'UPSTREAM_RATE_LIMITED') {
        // token_limit_exceeded: the region's batch quota is full until running batches finish.
        ctx.log.info({ job: ctx.job.id, chunk: chunk.id }, 'bulk: Azure\'s batch quota is full; the chunk is submitted again later')
        return Date.now() + pollIntervalMs
      }
      throw err
    }
    const nextPollAt = Date.now() + pollIntervalMs
    await ctx.chunks.update(chunk.id, { status: 'POLLING' satisfies ChunkStatus, batch_id: state.id, next_poll_at: nextPollAt })
    if (chunk.look === 1) await ctx.status('SUBMITTED') // a second (HIGH) batch: the job is already RUNNING
    // The local copy is no longer needed: Azure has it.
    await rm(chunkPath(options.chunkDir(ctx.job.id), chunk.id), { force: true })
    return nextPollAt
  }

  async function poll (ctx: ModeContext, chunk: BulkChunk): Promise<number | null> {
    if (chunk.nextPollAt > Date.now()) return chunk.nextPollAt
    if (chunk.batchId === null) return await submit(ctx, chunk)
    const state = await client.retrieve(chunk.batchId)
    if (!isFinalStatus(state.status)) {
      if (state.status !== 'validating') await ctx.status('RUNNING')
      const nextPollAt = Date.now() + pollIntervalMs
      await ctx.chunks.update(chunk.id, { next_poll_at: nextPollAt })
      return nextPollAt
    }
    if (state.status === 'failed' || state.status === 'expired' || state.status === 'cancelled') {
      ctx.log.warn({ job: ctx.job.id, chunk: chunk.id, batch: state.id, status: state.status, errors: state.errors.slice(0, 3) },
        'bulk: the batch ended without answering every line; what it did not answer goes through the online path')
    }
    await ctx.status('RUNNING')
    await ctx.chunks.update(chunk.id, { status: 'READING' satisfies ChunkStatus, output_file_id: state.outputFileId, error_file_id: state.errorFileId })
    return await read(ctx, { ...chunk, status: 'READING', outputFileId: state.outputFileId, errorFileId: state.errorFileId })
  }

  /** The batch's lines: each outcome announced while its item is SUBMITTED, in pages written before the next. */
  async function read (ctx: ModeContext, chunk: BulkChunk): Promise<number | null> {
    const waiting = await submittedItems(ctx, chunk.id)
    const files = [chunk.outputFileId, chunk.errorFileId].filter((id): id is string => id !== null).map(id => client.lines(id))
    const stats: ResultStats = { unknown: 0, repeated: 0, unreadable: 0 }
    const started = Date.now()
    const reading = { itemIds: new Set(waiting.keys()), deployment: batch.deployment, pageSize: PAGE, stats, log: ctx.log }
    for await (const page of readResults(files, reading)) {
      const answered: PreparedItem[] = []
      for (const outcome of page) {
        const item = waiting.get(outcome.itemId)!
        if (await announce(ctx, chunk, item, outcome, Date.now() - started)) answered.push(item)
      }
      await ctx.flushed()
      // Their records are written: their prepared images are no longer needed (a re-read skips them).
      for (const item of answered) await ctx.discard(item)
      if (ctx.signal.aborted) return Date.now() // the rest are still SUBMITTED: read again next time
    }
    if (stats.unknown + stats.repeated + stats.unreadable > 0) {
      // Unknown ids after a restart are the lines already recorded; others would be Azure's oddities.
      ctx.log.info({ job: ctx.job.id, chunk: chunk.id, ...stats }, 'bulk: batch result lines ignored')
    }
    await ctx.chunks.update(chunk.id, { status: 'RETRYING' satisfies ChunkStatus })
    return await retry(ctx, chunk)
  }

  /** Announces a line's outcome; true when the item is answered by it (not left for an online retry or a HIGH look). */
  async function announce (
    ctx: ModeContext, chunk: BulkChunk, item: PreparedItem, outcome: ItemOutcome, durationMs: number
  ): Promise<boolean> {
    if (inTwoLooks(ctx.job, item)) {
      if (item.look === 2) {
        // A HIGH look that failed does not fail the item: its LOW answer stands, as online.
        if (outcome.ok) await highLookAnswered(ctx, item, outcome.result, durationMs)
        else await highLookFailed(ctx, item, outcome.error, durationMs)
        return true
      }
      if (outcome.ok) return await lowLookAnswered(ctx, item, chunk.id, outcome.result, options.adaptiveMinConfidence, durationMs)
    }
    if (outcome.ok) {
      const { answer, vehicles, imageQuality, model, usage, upstreamStatus } = outcome.result
      // batch: its tokens are priced at VISION_BATCH_PRICE_*_PER_MTOK in usage (an online retry's at the online prices).
      const result = { answer, vehicles, imageQuality, model, usage, upstreamStatus, backendName: null }
      await ctx.answered(item, { result, batch: true }, durationMs)
      return true
    }
    if (outcome.retryOnline && item.onlineRetry === 0) return false // left SUBMITTED: asked again online after the read
    await ctx.answered(item, { error: outcome.error }, durationMs)
    return true
  }

  /** What the batch did not answer (missing lines, retryable failures, a failed or expired batch): once online. */
  async function retry (ctx: ModeContext, chunk: BulkChunk): Promise<number | null> {
    const limit = pLimit(options.onlineConcurrency)
    for (;;) {
      const items = await ctx.chunks.items(chunk.id, PAGE)
      if (items.length === 0) break
      // ADAPTIVE HIGH looks the batch did not answer: the LOW answer stands (asking online would look twice again).
      const highLooks = items.filter(item => inTwoLooks(ctx.job, item) && item.look === 2)
      for (const item of highLooks) {
        await highLookFailed(ctx, item, new UpstreamUnavailableError('Azure OpenAI\'s batch did not answer the closer look.'), 0)
      }
      const fresh = items.filter(item => item.onlineRetry === 0 && !highLooks.includes(item)).map(item => item.id)
      if (fresh.length > 0) await ctx.chunks.markOnlineRetry(fresh)
      // An item whose online answer fails is recorded FAILED with its code by the flow: the others go on.
      await Promise.all(items.filter(item => !highLooks.includes(item)).map(item => limit(async () => {
        if (!ctx.signal.aborted) await ctx.identifyOnline({ ...item, onlineRetry: 1 }).catch(() => {})
      })))
      await ctx.flushed()
      if (ctx.signal.aborted) return Date.now()
      const left = await ctx.chunks.items(chunk.id, PAGE)
      if (left.length > 0 && left.every(item => items.some(tried => tried.id === item.id))) {
        // Asked and still not recorded (history refused the records): the worker's finish decides.
        break
      }
    }
    await ctx.chunks.update(chunk.id, { status: 'DONE' satisfies ChunkStatus })
    return null
  }

  /** A chunk whose input file is lost both here and at Azure: its items go online. */
  async function toOnline (ctx: ModeContext, chunk: BulkChunk): Promise<number | null> {
    ctx.log.warn({ job: ctx.job.id, chunk: chunk.id }, 'bulk: a chunk\'s file is gone before it was uploaded; its photos go through the online path')
    await ctx.chunks.update(chunk.id, { status: 'RETRYING' satisfies ChunkStatus })
    return await retry(ctx, chunk)
  }
}

/** The chunk's SUBMITTED items by their line's custom_id (at most 100,000: a file's lines). */
async function submittedItems (ctx: ModeContext, chunkId: string): Promise<Map<string, PreparedItem>> {
  const items = new Map<string, PreparedItem>()
  let after = -1
  for (;;) {
    const page = await ctx.chunks.items(chunkId, PAGE, after)
    if (page.length === 0) return items
    for (const item of page) items.set(customIdOf(ctx.job, item), item)
    after = page[page.length - 1]!.seq
  }
}

/** Whether the job has items waiting to be written into a chunk. */
async function hasPrepared (ctx: ModeContext): Promise<boolean> {
  const pages = ctx.pages(1, 'PREPARED')[Symbol.asyncIterator]()
  const first = await pages.next()
  await pages.return?.()
  return first.done !== true
}

function codeOf (err: unknown): string {
  return err instanceof AppError ? err.code : err instanceof Error ? err.name : 'unknown'
}
