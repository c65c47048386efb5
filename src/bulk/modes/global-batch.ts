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
import { mkdir, rm } from 'node:fs/promises'
import { exists } from '../files.ts'
import { randomUUID } from 'node:crypto'
import pLimit from 'p-limit'
import { AppError } from '../../errors.ts'
import { preparedDetail } from '../../identification/prepared.ts'
import type { ImageMimeType } from '../../image/mime-types.ts'
import type { GlobalBatchConfig } from '../config.ts'
import { createBatchClient, isFinalStatus, type BatchClient, type BatchClientOptions } from '../global-batch/client.ts'
import { chunkPath, JsonlWriter, LineTooLargeError, MAX_BYTES_PER_FILE, MAX_LINES_PER_FILE } from '../global-batch/jsonl.ts'
import { readResults, type ItemOutcome, type ResultStats } from '../global-batch/results.ts'
import type { BulkChunk, BulkModeRunner, ModeContext, ModeStep, PreparedItem } from './mode.ts'

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

  /** Every PREPARED item into JSONL chunks; each chunk recorded (its items SUBMITTED) once its file is whole. */
  async function writeChunks (ctx: ModeContext): Promise<void> {
    const dir = options.chunkDir(ctx.job.id)
    let writer: JsonlWriter | undefined
    const tooLarge: PreparedItem[] = []
    const detail = preparedDetail(ctx.job.detail)
    try {
      for await (const page of ctx.pages(PAGE, 'PREPARED')) {
        if (ctx.signal.aborted) break
        if (writer === undefined) {
          await mkdir(dir, { recursive: true, mode: 0o700 })
          writer = new JsonlWriter({
            dir,
            deployment: batch.deployment,
            url: client.chatUrl,
            maxTokens: options.maxTokens,
            maxLines: options.maxLinesPerFile ?? MAX_LINES_PER_FILE,
            maxBytes: options.maxBytesPerFile ?? MAX_BYTES_PER_FILE,
            nextChunkId: () => randomUUID()
          })
        }
        for (const item of page) {
          const image = await ctx.read(item)
          try {
            await writer.add(item.id, {
              image,
              mimeType: item.sent.sentMimeType as ImageMimeType,
              detail,
              instructions: ctx.job.instructions,
              language: ctx.job.language
            })
          } catch (err) {
            if (!(err instanceof LineTooLargeError)) throw err
            tooLarge.push(item)
          }
        }
      }
      if (writer === undefined) return
      if (ctx.signal.aborted) { await writer.abort(); return }
      for (const chunk of await writer.finish()) {
        await ctx.chunks.create({ id: chunk.chunkId, status: 'WRITTEN' satisfies ChunkStatus, lines: chunk.lines, bytes: chunk.bytes }, chunk.itemIds)
      }
    } catch (err) {
      await writer?.abort()
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
    await ctx.status('SUBMITTED')
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
      for (const outcome of page) await announce(ctx, waiting.get(outcome.itemId)!, outcome, Date.now() - started)
      await ctx.flushed()
      if (ctx.signal.aborted) return Date.now() // the rest are still SUBMITTED: read again next time
    }
    if (stats.unknown + stats.repeated + stats.unreadable > 0) {
      // Unknown ids after a restart are the lines already recorded; others would be Azure's oddities.
      ctx.log.info({ job: ctx.job.id, chunk: chunk.id, ...stats }, 'bulk: batch result lines ignored')
    }
    await ctx.chunks.update(chunk.id, { status: 'RETRYING' satisfies ChunkStatus })
    return await retry(ctx, chunk)
  }

  async function announce (ctx: ModeContext, item: PreparedItem, outcome: ItemOutcome, durationMs: number): Promise<void> {
    if (outcome.ok) {
      const { answer, vehicles, imageQuality, model, usage, upstreamStatus } = outcome.result
      // batch: its tokens are priced at VISION_BATCH_PRICE_*_PER_MTOK in usage (an online retry's at the online prices).
      const result = { answer, vehicles, imageQuality, model, usage, upstreamStatus, backendName: null }
      await ctx.answered(item, { result, batch: true }, durationMs)
      return
    }
    if (outcome.retryOnline && item.onlineRetry === 0) return // left SUBMITTED: asked again online after the read
    await ctx.answered(item, { error: outcome.error }, durationMs)
  }

  /** What the batch did not answer (missing lines, retryable failures, a failed or expired batch): once online. */
  async function retry (ctx: ModeContext, chunk: BulkChunk): Promise<number | null> {
    const limit = pLimit(options.onlineConcurrency)
    for (;;) {
      const items = await ctx.chunks.items(chunk.id, PAGE)
      if (items.length === 0) break
      const fresh = items.filter(item => item.onlineRetry === 0).map(item => item.id)
      if (fresh.length > 0) await ctx.chunks.markOnlineRetry(fresh)
      // An item whose online answer fails is recorded FAILED with its code by the flow: the others go on.
      await Promise.all(items.map(item => limit(async () => {
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

/** The chunk's SUBMITTED items by id (at most 100,000: a file's lines). */
async function submittedItems (ctx: ModeContext, chunkId: string): Promise<Map<string, PreparedItem>> {
  const items = new Map<string, PreparedItem>()
  let after = -1
  for (;;) {
    const page = await ctx.chunks.items(chunkId, PAGE, after)
    if (page.length === 0) return items
    for (const item of page) items.set(item.id, item)
    after = page[page.length - 1]!.seq
  }
}

function codeOf (err: unknown): string {
  return err instanceof AppError ? err.code : err instanceof Error ? err.name : 'unknown'
}
