// ADAPTIVE detail in GLOBAL_BATCH: two batches, as online takes two looks. The first holds every item's LOW look
// (custom_id = the item's id, detail "low", its ≤ 512×512 LOW image); an answer good enough by the online rule
// (needsCloserLook) is the item's answer. The others go PREPARED again at look 2, their LOW answer kept
// (bulk_items.first_look), and into a second batch at HIGH (custom_id = `<item id>:high`, detail "high", the HIGH
// image from the same decode). Their answer is the HIGH look's, its usage both looks' tokens; a HIGH look that
// fails or never comes leaves the LOW answer (looks 2, detailUsed LOW), as online when a second look fails.
// An item prepared without a LOW image (not an ADAPTIVE job, or one prepared before this) takes one look as it was
// prepared, with its own id as custom_id.
import type { AppError } from '../../errors.ts'
import { needsCloserLook, type AdaptiveReport } from '../../identification/adaptive.ts'
import { preparedDetail } from '../../identification/prepared.ts'
import type { ImageDetail } from '../../image/tokens.ts'
import type { Confidence } from '../../vision/answer-schema.ts'
import { totalUsage } from '../../vision/completion.ts'
import type { BatchAnswer } from '../global-batch/results.ts'
import type { BulkJobSpec, FirstLook, ModeContext, PreparedItem } from './mode.ts'

/** The custom_id suffix of an item's HIGH look: never the same custom_id twice for one item. */
export const HIGH_LOOK_SUFFIX = ':high'

/** What an item's batch line sends. */
export interface BatchLook {
  customId: string
  look: 1 | 2
  /** Where the image to send is. */
  path: string
  mimeType: string
  detail: ImageDetail
}

/** Whether the item takes ADAPTIVE's looks in batches: prepared with its LOW image. */
export function inTwoLooks (job: BulkJobSpec, item: PreparedItem): boolean {
  return job.detail === 'adaptive' && item.low !== null
}

/** The line an item is asked with at its current look. */
export function batchLookOf (job: BulkJobSpec, item: PreparedItem): BatchLook {
  if (!inTwoLooks(job, item)) {
    return { customId: item.id, look: 1, path: item.path, mimeType: item.sent.sentMimeType, detail: preparedDetail(job.detail) }
  }
  if (item.look === 1) return { customId: item.id, look: 1, path: item.low!.path, mimeType: item.low!.sentMimeType, detail: 'low' }
  return { customId: `${item.id}${HIGH_LOOK_SUFFIX}`, look: 2, path: item.path, mimeType: item.sent.sentMimeType, detail: 'high' }
}

/** The item a line's custom_id is for. */
export function itemIdOf (customId: string): string {
  return customId.endsWith(HIGH_LOOK_SUFFIX) ? customId.slice(0, -HIGH_LOOK_SUFFIX.length) : customId
}

/** The custom_id the item's line carries in its current chunk. */
export function customIdOf (job: BulkJobSpec, item: PreparedItem): string {
  return batchLookOf(job, item).customId
}

/**
 * A two-look item's LOW answer: its answer when good enough (true), else kept for a HIGH look in the next batch
 * (false; the caller writes nothing more for it).
 */
export async function lowLookAnswered (
  ctx: ModeContext, item: PreparedItem, chunkId: string, answer: BatchAnswer, minConfidence: Confidence, durationMs: number
): Promise<boolean> {
  const reason = needsCloserLook(answer, minConfidence)
  if (reason === null) {
    await ctx.answered(item, {
      result: resultOf(answer, answer.usage),
      batch: true,
      adaptive: { looks: 1, report: reportOf(item, null, null, false) }
    }, durationMs)
    return true
  }
  await ctx.chunks.secondLook(item.id, chunkId, { ...answer, reason })
  return false
}

/** A two-look item's HIGH answer: the item's answer, with both looks' tokens. */
export async function highLookAnswered (ctx: ModeContext, item: PreparedItem, answer: BatchAnswer, durationMs: number): Promise<void> {
  const first = firstLookOf(item)
  await ctx.answered(item, {
    result: resultOf(answer, totalUsage([first.usage, answer.usage])),
    batch: true,
    adaptive: { looks: 2, report: reportOf(item, first.reason, null, true) }
  }, durationMs)
}

/** A two-look item whose HIGH look failed (or never came): answered with its LOW look, as online. */
export async function highLookFailed (ctx: ModeContext, item: PreparedItem, error: AppError, durationMs: number): Promise<void> {
  const first = firstLookOf(item)
  await ctx.answered(item, {
    result: resultOf(first, first.usage),
    batch: true,
    adaptive: { looks: 2, report: reportOf(item, first.reason, error.code, true) }
  }, durationMs)
}

function firstLookOf (item: PreparedItem): FirstLook {
  if (item.firstLook === null) throw new Error('an item at its second look has no first look recorded')
  return item.firstLook
}

function resultOf (answer: BatchAnswer, usage: BatchAnswer['usage']): BatchAnswer & { backendName: null } {
  const { answer: text, vehicles, imageQuality, model, upstreamStatus } = answer
  return { answer: text, vehicles, imageQuality, model, usage, upstreamStatus, backendName: null }
}

/** The report online's adaptive look gives (metrics: looks, reasons, image tokens sent against HIGH alone). */
function reportOf (item: PreparedItem, secondLook: FirstLook['reason'] | null, secondLookFailure: string | null, highSent: boolean): AdaptiveReport {
  // The HIGH image's estimate is the upload's at HIGH: what a HIGH-only identification sends.
  const highOnlyImageTokens = item.sent.estimatedImageTokens
  return {
    secondLook,
    secondLookFailure,
    sentImageTokens: item.low!.estimatedImageTokens + (highSent ? highOnlyImageTokens : 0),
    highOnlyImageTokens
  }
}
