// ADAPTIVE detail: look at LOW first (85 image tokens), and again at HIGH only when the first answer is not
// good enough (no vehicle, the first vehicle's confidence below VISION_ADAPTIVE_MIN_CONFIDENCE, a photo the
// model calls too small or unclear). The HIGH image is prepared while the LOW look is on the wire, so a
// second look adds one model call, not a second pipeline run; it is abandoned when the LOW answer is kept.
// Both looks are one identification: the flow records, announces and caches it once.
import { AppError, ClientClosedRequestError, UpstreamTimeoutError } from '../errors.ts'
import type { ImagePipeline, PreparedImage } from '../image/pipeline.ts'
import { estimateImageTokens } from '../image/tokens.ts'
import type { Confidence } from '../vision/answer-schema.ts'
import { CONFIDENCES } from '../vision/answer-schema.ts'
import { totalUsage } from '../vision/completion.ts'
import type { TokenUsage } from '../vision/types.ts'
import { ask, lookUp, type LookDeps, type LookResult, type Question } from './look.ts'

export type SecondLookReason = 'no_vehicle' | 'low_confidence' | 'image_unclear'

/** Both looks share one budget: VISION_TIMEOUT_MS × 1.5 from the first look's start (not a fresh timeout each). */
export const ADAPTIVE_BUDGET_FACTOR = 1.5

export interface AdaptiveOptions {
  /** The first vehicle's confidence at or above which the LOW look is kept (VISION_ADAPTIVE_MIN_CONFIDENCE). */
  minConfidence: Confidence
  /** Milliseconds both looks may take together, from the first look's start. */
  budgetMs: number
}

export interface AdaptiveDeps extends LookDeps {
  images: ImagePipeline
  adaptive: AdaptiveOptions
  now?: () => number
}

/** Why the LOW answer is not good enough, or null when it is kept. */
export function needsCloserLook (
  result: Pick<LookResult, 'vehicles' | 'imageQuality'>, minConfidence: Confidence
): SecondLookReason | null {
  const first = result.vehicles[0]
  if (first === undefined) return 'no_vehicle'
  // CONFIDENCES runs HIGH, MEDIUM, LOW: a later index is less sure.
  if (CONFIDENCES.indexOf(first.confidence) > CONFIDENCES.indexOf(minConfidence)) return 'low_confidence'
  // A cached answer does not say (null): judged by its vehicles alone.
  if (result.imageQuality !== null && result.imageQuality !== 'CLEAR') return 'image_unclear'
  return null
}

/** What the adaptive look made of it, for metrics and the log (on the `completed` event). */
export interface AdaptiveReport {
  /** Why a second look was taken; null: the LOW look was kept. */
  secondLook: SecondLookReason | null
  /** The second look's error code when it failed and the first look's answer was given instead. */
  secondLookFailure: string | null
  /** Image tokens of the looks taken (85, plus the HIGH estimate for a second look), by the tile rule. */
  sentImageTokens: number
  /** Image tokens a HIGH-only identification of the upload would have taken. */
  highOnlyImageTokens: number
}

export interface AdaptiveOutcome {
  result: LookResult
  /** The image the answer came from. */
  sent: PreparedImage
  detailUsed: 'low' | 'high'
  looks: 1 | 2
  /** Every model call's tokens (a cached look adds none); null when unknown or none was made. */
  usage: TokenUsage | null
  /** The key of the look that answered (a later plain HIGH request for the same photo may reuse a two-look answer). */
  cacheKey: string | null
  cached: boolean
  report: AdaptiveReport
}

/** Progress the flow reports if the identification fails (what was sent, when the model was first asked). */
export interface AdaptiveProgress {
  sent (image: PreparedImage): void
  asking (): void
}

export async function lookAdaptively (
  deps: AdaptiveDeps, question: Question, progress: AdaptiveProgress
): Promise<AdaptiveOutcome> {
  const { images, adaptive, now = Date.now } = deps
  const { input, upload } = question
  const deadlineAt = now() + adaptive.budgetMs
  const highOnlyImageTokens = estimateImageTokens(upload.width, upload.height, 'high')
  // Abandons the HIGH image (not encoded once the LOW one is out) when it is not needed.
  let unneeded: AbortController | undefined
  let low: PreparedImage
  let prepareHigh: () => Promise<PreparedImage>
  if (deps.vision.readsPixels === false) {
    // A backend that reads no pixels (the simulated one) is told what the LOW image would be, not sent one: no
    // decode for a look nobody sees. No model call to hide the HIGH image's making behind: made when needed.
    low = images.describe(input.image, upload, 'low')
    let high: Promise<PreparedImage> | undefined
    prepareHigh = () => {
      high ??= images.prepare(input.image, upload, 'high')
      return high
    }
  } else {
    // One decode for both images: the LOW one is sent as soon as it is made, the HIGH one is ready for a second look.
    const abandon = unneeded = new AbortController()
    const both = images.prepareLowAndHigh(input.image, upload, { signal: abandon.signal })
    prepareHigh = () => both.high
    low = await both.low.catch(async (err: unknown) => { abandon.abort(); throw err })
  }

  try {
    progress.sent(low)
    const first = await lookUp(deps, question, low)
    progress.asking()
    let firstResult: LookResult
    let firstCached: boolean
    if (first.hit !== undefined && needsCloserLook(first.hit, adaptive.minConfidence) === null) {
      firstResult = first.hit
      firstCached = true
    } else if (first.hit !== undefined) {
      // A cached LOW answer that is unsure: asking at LOW again would say the same.
      firstResult = first.hit
      firstCached = true
    } else {
      // The LOW request is on its way: the HIGH image is made meanwhile (prepareLowAndHigh).
      firstResult = await ask(deps, question, low, first.sentSha256, input.signal)
      firstCached = false
    }
    const firstUsage = firstCached ? [] : [firstResult.usage]
    const reason = needsCloserLook(firstResult, adaptive.minConfidence)
    const oneLook = (looks: 1 | 2, secondLookFailure: string | null, highTokens: number): AdaptiveOutcome => ({
      result: firstResult,
      sent: low,
      detailUsed: 'low',
      looks,
      usage: firstUsage.length === 0 ? null : totalUsage(firstUsage),
      cacheKey: first.cacheKey,
      cached: firstCached,
      report: { secondLook: reason, secondLookFailure, sentImageTokens: low.estimatedImageTokens + highTokens, highOnlyImageTokens }
    })
    if (reason === null) return oneLook(1, null, 0)

    if (input.signal.aborted) throw new ClientClosedRequestError('The client went away before the second look.')
    const left = deadlineAt - now()
    let second: { result: LookResult, sent: PreparedImage, cacheKey: string | null, cached: boolean }
    try {
      if (left <= 0) throw new UpstreamTimeoutError('No time was left for a second look.')
      const highImage = await prepareHigh()
      const { cacheKey, sentSha256, hit } = await lookUp(deps, question, highImage)
      if (hit !== undefined) {
        second = { result: hit, sent: highImage, cacheKey, cached: true }
      } else {
        const timeLeft = AbortSignal.timeout(Math.max(1, deadlineAt - now()))
        try {
          const result = await ask(deps, question, highImage, sentSha256, AbortSignal.any([input.signal, timeLeft]))
          second = { result, sent: highImage, cacheKey, cached: false }
        } catch (err) {
          // The budget ran out: the vision service only saw its signal abort.
          if (timeLeft.aborted && !input.signal.aborted) throw new UpstreamTimeoutError('The second look ran out of time.', { cause: err })
          throw err
        }
      }
    } catch (err) {
      if (input.signal.aborted) throw err
      // The first look answered: a failed closer look does not fail the identification.
      return oneLook(2, err instanceof AppError ? err.code : 'INTERNAL_SERVER_ERROR', highOnlyImageTokens)
    }
    const usages = [...firstUsage, ...(second.cached ? [] : [second.result.usage])]
    return {
      result: second.result,
      sent: second.sent,
      detailUsed: 'high',
      looks: 2,
      usage: usages.length === 0 ? null : totalUsage(usages),
      cacheKey: second.cacheKey,
      cached: second.cached && firstCached,
      report: {
        secondLook: reason,
        secondLookFailure: null,
        sentImageTokens: low.estimatedImageTokens + second.sent.estimatedImageTokens,
        highOnlyImageTokens
      }
    }
  } finally {
    unneeded?.abort()
  }
}
