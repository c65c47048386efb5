// One identification, start to finish: take a vision slot, inspect the upload, prepare what the model
// sees, ask the vision service, give the slot back. What happens is announced on IdentificationEvents
// (started, completed, failed); metrics, the log line and any later capability subscribe there instead
// of being called from here. The slot is taken here, not by an entry point, so that every entry point
// (HTTP, bulk jobs) shares the same slots and fair shares (src/limits/admission.ts).
import type { Caller } from '../callers/caller.ts'
import { AppError } from '../errors.ts'
import { inspectImage } from '../image/inspect.ts'
import type { ImagePipeline, PreparedImage } from '../image/pipeline.ts'
import type { ImageDetail } from '../image/tokens.ts'
import type { Admission, AdmissionLane } from '../limits/admission.ts'
import type { VisionService } from '../vision/types.ts'
import { lookAdaptively, type AdaptiveOptions, type AdaptiveReport } from './adaptive.ts'
import type { IdentificationEvents } from './events.ts'
import { timeOrderedId } from './ids.ts'
import { lookOnce, type LookDeps, type LookResult, type Question } from './look.ts'
import { detailName, type AnswerCache, type Identification, type IdentificationInput, type SentImageInfo } from './types.ts'

export interface IdentificationDeps {
  vision: VisionService
  images: ImagePipeline
  events: IdentificationEvents
  /** The vision slots: one is held for the work (image pipeline, model call). */
  admission: Admission
  /** Earlier answers to the same question (history's result cache); none: always ask the model. */
  answers?: AnswerCache | null
  /** ADAPTIVE detail's threshold and time budget. */
  adaptive: AdaptiveOptions
}

/** Who asked, and through which request (for log correlation). */
export interface IdentificationOrigin {
  caller: Caller
  requestId: string
  /**
   * Whose share of the slots this spends, keyed as the rate limits key it (src/http/requests.ts
   * `callerKey`: the identity, else the client address); `caller:<id>` when not given.
   */
  share?: string
  /** The id the identification gets (a bulk item's: a re-run after a crash writes the same record); a fresh one when not given. */
  identificationId?: string
  /** The bulk job it belongs to (its record carries it; no per-item events go out for it). */
  bulkJobId?: string
  /** 'background': a bulk item, which takes a slot only when no interactive caller waits (src/limits/admission.ts). */
  lane?: AdmissionLane
}

export async function identifyVehicle (
  { vision, images, events, admission, answers = null, adaptive }: IdentificationDeps,
  origin: IdentificationOrigin,
  input: IdentificationInput
): Promise<Identification> {
  const { caller, share = `caller:${caller.id}`, lane = 'interactive' } = origin
  // Refused (RATE_LIMITED, OVERLOADED) or abandoned before the work starts: no event, as before any work.
  const release = await admission.acquire(share, input.signal, lane)
  try {
    return await identifyHoldingSlot({ vision, images, events, answers, adaptive }, origin, input, release)
  } finally {
    release()
  }
}

/** The work, with a slot held: `release` gives it back as soon as the model has answered (or failed). */
async function identifyHoldingSlot (
  { vision, images, events, answers, adaptive }: Omit<IdentificationDeps, 'admission' | 'answers'> & { answers: AnswerCache | null },
  { caller, requestId, identificationId, bulkJobId }: IdentificationOrigin,
  input: IdentificationInput,
  release: () => void
): Promise<Identification> {
  const started = performance.now()
  const base = {
    id: identificationId ?? timeOrderedId(), caller, requestId, backend: vision.backend, ...(bulkJobId === undefined ? {} : { bulkJobId })
  }
  const elapsed = (): number => Math.round(performance.now() - started)
  events.emit('started', { ...base, bytes: input.image.length, detail: input.detail, language: input.language })
  const known: Partial<SentImageInfo> = {}
  let upstreamStarted: number | undefined

  try {
    const image = await inspectImage(input.image)
    // A bulk item's prepared image: what is reported of the upload is the photo it was prepared from.
    const upload = input.original ?? image
    const { sha256, mimeType, bytes, width, height } = upload
    Object.assign(known, { sha256, mimeType, bytes, width, height })
    const question = { caller, input, upload: image }
    const progress = {
      sent: (sent: PreparedImage) => {
        Object.assign(known, { sentMimeType: sent.mimeType, sentBytes: sentBytesOf(sent), sentWidth: sent.width, sentHeight: sent.height })
      },
      asking: () => { upstreamStarted = performance.now() }
    }
    const answered = input.detail === 'adaptive'
      ? await lookAdaptively({ vision, images, answers, adaptive }, question, progress)
      : await lookAtDetail({ vision, images, answers }, question, input.detail, progress)
    const { result, sent } = answered
    const upstreamMs = performance.now() - (upstreamStarted ?? started)
    release() // recording and announcing the answer need no slot
    const detailUsed = detailName(answered.detailUsed)
    const identification: Identification = {
      id: base.id,
      callerId: caller.id,
      answer: result.answer,
      vehicles: result.vehicles,
      language: input.language,
      backend: vision.backend,
      model: result.model,
      backendName: result.backendName,
      bulkJobId: bulkJobId ?? null,
      image: {
        sha256: upload.sha256,
        mimeType: upload.mimeType,
        bytes: upload.bytes,
        width: upload.width,
        height: upload.height,
        sentMimeType: sent.mimeType,
        sentBytes: sentBytesOf(sent),
        sentWidth: sent.width,
        sentHeight: sent.height,
        // Every look's: an adaptive second look sent the LOW image too.
        estimatedImageTokens: answered.report?.sentImageTokens ?? sent.estimatedImageTokens,
        detailUsed,
        looks: answered.looks
      },
      detailUsed,
      looks: answered.looks,
      usage: answered.usage,
      cached: answered.cached,
      durationMs: elapsed(),
      createdAt: new Date()
    }
    const { cacheKey } = answered
    // settle: a durable subscriber (history, while webhooks are configured) may have the record written first.
    await events.settle('completed', {
      ...base,
      identification,
      detail: input.detail,
      upstreamMs,
      upstreamStatus: result.upstreamStatus,
      cacheKey,
      sentImage: sent.bytes,
      ...(answered.report === undefined ? {} : { adaptive: answered.report })
    })
    return identification
  } catch (err) {
    release()
    await events.settle('failed', {
      ...base,
      code: err instanceof AppError ? err.code : 'INTERNAL_SERVER_ERROR',
      error: err,
      bytes: input.image.length,
      detail: input.detail,
      durationMs: elapsed(),
      language: input.language,
      ...(upstreamStarted === undefined ? {} : { upstreamMs: performance.now() - upstreamStarted }),
      ...(Object.keys(known).length > 0 ? { image: known } : {})
    })
    throw err
  }
}

/** The size of what was sent; null when it was only described to a backend that reads no pixels (never encoded). */
const sentBytesOf = (sent: PreparedImage): number | null => sent.described === true ? null : sent.bytes.length

/** A plain detail's one look (or an ADAPTIVE one's: src/identification/adaptive.ts), as the flow records it. */
interface Answered {
  result: LookResult
  sent: PreparedImage
  detailUsed: ImageDetail
  looks: 1 | 2
  usage: LookResult['usage']
  cacheKey: string | null
  cached: boolean
  report?: AdaptiveReport
}

async function lookAtDetail (
  { vision, images, answers }: LookDeps & { images: ImagePipeline },
  question: Question,
  detail: ImageDetail,
  progress: { sent: (image: PreparedImage) => void, asking: () => void }
): Promise<Answered> {
  const sent = await images.prepare(question.input.image, question.upload, detail)
  progress.sent(sent)
  const look = await lookOnce({ vision, answers }, question, sent, progress.asking)
  return { ...look, detailUsed: detail, looks: 1, usage: look.result.usage }
}
