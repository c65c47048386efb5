// The ModeContext a job's mode works through (./modes/mode.ts): its prepared items from the database and disk, and
// the identification seams (answered: a Global Batch line; identifyOnline: the flow in the background lane).
import { readFile, rm } from 'node:fs/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { Caller } from '../callers/caller.ts'
import type { History } from '../history/public.ts'
import type { IdentificationService, PreparedCall } from '../identification/plugin.ts'
import type { ImageMimeType } from '../image/mime-types.ts'
import type { ImageDetail } from '../image/tokens.ts'
import type { BulkJobSpec, ChunkState, ModeContext, PreparedItem } from './modes/mode.ts'
import { preparedItemOf, type BulkJobRow, type BulkStore } from './store.ts'
import type { BulkFiles } from './files.ts'
import { preparedDetail } from '../identification/prepared.ts'
import { detailName, type SentImageInfo } from '../identification/types.ts'

export interface ContextDeps {
  store: BulkStore
  files: BulkFiles
  identification: IdentificationService
  history: History
  log: FastifyBaseLogger
}

export function jobSpecOf (row: BulkJobRow): BulkJobSpec {
  return {
    id: row.id,
    callerId: row.caller_id,
    callerKind: row.caller_kind,
    mode: row.mode,
    detail: row.detail as BulkJobSpec['detail'],
    language: row.language,
    instructions: row.instructions,
    createdAt: Number(row.created_at)
  }
}

/** The job's owner as the flow sees it: its id and kind (its roles were checked when the job was created). */
export function callerOf (job: BulkJobSpec): Caller {
  return { kind: job.callerKind as Caller['kind'], id: job.callerId, roles: new Set(['Identify']) }
}

/** An item's identification call: the item's id, the job's id and question. */
export function callOf (job: BulkJobSpec, itemId: string): PreparedCall {
  return {
    origin: { caller: callerOf(job), requestId: `bulk:${job.id}`, share: `bulk:${job.id}`, identificationId: itemId, bulkJobId: job.id },
    instructions: job.instructions,
    language: job.language,
    detail: job.detail
  }
}

export function modeContext (
  { store, files, identification, history, log }: ContextDeps, job: BulkJobSpec, signal: AbortSignal
): ModeContext {
  const itemOf = (row: Parameters<typeof preparedItemOf>[0]): PreparedItem =>
    preparedItemOf(row, files.preparedPath(job.id, row.id), files.preparedLowPath(job.id, row.id))
  const read = async (item: PreparedItem): Promise<Buffer> => await readFile(item.path)
  const chunks: ChunkState = {
    list: async () => await store.chunks(job.id),
    create: async (chunk, itemIds) => { await store.createChunk(job.id, chunk, itemIds) },
    update: async (id, change) => { await store.updateChunk(id, change) },
    items: async (chunkId, size, afterSeq) => (await store.chunkItems(chunkId, size, afterSeq)).map(itemOf),
    markOnlineRetry: async itemIds => { await store.markOnlineRetry(itemIds) },
    secondLook: async (itemId, chunkId, firstLook) => await store.secondLook(itemId, chunkId, firstLook)
  }
  return {
    job,
    log,
    signal,
    async * pages (size, status = 'PREPARED') {
      let after = -1
      for (;;) {
        const rows = await store.itemsWithStatus(job.id, status, Math.min(size, 500), after)
        if (rows.length === 0) return
        after = Number(rows[rows.length - 1]?.seq)
        yield rows.map(itemOf)
      }
    },
    read,
    callOf: item => callOf(job, item.id),
    async answered (item, outcome, durationMs) {
      // An ADAPTIVE item answered from its LOW look (or failed at it): the LOW image is what was sent.
      const looks = 'result' in outcome ? outcome.adaptive : undefined
      const atLow = looks === undefined ? item.look === 1 : looks.looks === 1 || looks.report.secondLookFailure !== null
      const low = atLow ? item.low : null
      const bytes = await readFile(low?.path ?? item.path)
      const shown: SentImageInfo = low === null ? { ...item.sent } : { ...item.sent, ...pick(low) }
      const info: SentImageInfo = looks === undefined
        ? shown
        // Every look's image tokens, as online (an answer from the HIGH look sent the LOW image too).
        : { ...shown, looks: looks.looks, estimatedImageTokens: looks.report.sentImageTokens }
      const { sent: prepared } = item
      const { sha256, mimeType, bytes: uploadBytes, width, height } = prepared
      const upload = { sha256, mimeType, bytes: uploadBytes, width, height }
      const sent = {
        bytes,
        mimeType: shown.sentMimeType as ImageMimeType,
        width: shown.sentWidth,
        height: shown.sentHeight,
        detail: (low === null ? preparedDetail(job.detail) : 'low') as ImageDetail,
        original: false,
        estimatedImageTokens: shown.estimatedImageTokens,
        estimatedDecodeBytes: 0
      }
      const recorded = { upload, sent, info: { ...info, detailUsed: detailName(sent.detail) } }
      await identification.answered(callOf(job, item.id), recorded, outcome, durationMs)
    },
    async discard (item) {
      await rm(item.path, { force: true })
      if (item.low !== null) await rm(item.low.path, { force: true })
    },
    async identifyOnline (item) {
      const image = await read(item)
      const { sent: info } = item
      const call = callOf(job, item.id)
      await identification.identify({
        origin: { ...call.origin, lane: 'background' },
        input: {
          image,
          instructions: job.instructions,
          language: job.language,
          detail: job.detail,
          signal,
          original: { sha256: info.sha256, mimeType: info.mimeType, bytes: info.bytes, width: info.width, height: info.height }
        },
        log
      })
    },
    flushed: async () => { await history.flushed() },
    chunks,
    status: async status => { await store.setStatus(job.id, status) }
  }
}

/** The sent image's facts of an item's LOW image. */
function pick (low: NonNullable<PreparedItem['low']>): Pick<SentImageInfo, 'sentMimeType' | 'sentBytes' | 'sentWidth' | 'sentHeight' | 'estimatedImageTokens'> {
  return {
    sentMimeType: low.sentMimeType,
    sentBytes: low.sentBytes,
    sentWidth: low.sentWidth,
    sentHeight: low.sentHeight,
    estimatedImageTokens: low.estimatedImageTokens
  }
}
