// One identification, start to finish: take a vision slot, inspect the upload, prepare what the model
// sees, ask the vision service, give the slot back. What happens is announced on IdentificationEvents
// (started, completed, failed); metrics, the log line and any later capability subscribe there instead
// of being called from here. The slot is taken here, not by an entry point, so that every entry point
// (HTTP, bulk jobs) shares the same slots and fair shares (src/limits/admission.ts).
import { createHash, randomUUID } from 'node:crypto'
import type { Caller } from '../callers/caller.ts'
import { AppError } from '../errors.ts'
import { inspectImage } from '../image/inspect.ts'
import type { ImagePipeline } from '../image/pipeline.ts'
import type { Admission } from '../limits/admission.ts'
import type { VisionService } from '../vision/types.ts'
import type { IdentificationEvents } from './events.ts'
import { detailName, type AnswerCache, type Identification, type IdentificationInput, type SentImageInfo } from './types.ts'

export interface IdentificationDeps {
  vision: VisionService
  images: ImagePipeline
  events: IdentificationEvents
  /** The vision slots: one is held for the work (image pipeline, model call). */
  admission: Admission
  /** Earlier answers to the same question (history's result cache); none: always ask the model. */
  answers?: AnswerCache | null
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
}

export async function identifyVehicle (
  { vision, images, events, admission, answers = null }: IdentificationDeps,
  { caller, requestId, share = `caller:${caller.id}` }: IdentificationOrigin,
  input: IdentificationInput
): Promise<Identification> {
  // Refused (RATE_LIMITED, OVERLOADED) or abandoned before the work starts: no event, as before any work.
  const release = await admission.acquire(share, input.signal)
  try {
    return await identifyHoldingSlot({ vision, images, events, answers }, { caller, requestId }, input, release)
  } finally {
    release()
  }
}

/** The work, with a slot held: `release` gives it back as soon as the model has answered (or failed). */
async function identifyHoldingSlot (
  { vision, images, events, answers }: Omit<IdentificationDeps, 'admission' | 'answers'> & { answers: AnswerCache | null },
  { caller, requestId }: IdentificationOrigin,
  input: IdentificationInput,
  release: () => void
): Promise<Identification> {
  const started = performance.now()
  const base = { id: randomUUID(), caller, requestId, backend: vision.backend }
  const elapsed = (): number => Math.round(performance.now() - started)
  events.emit('started', { ...base, bytes: input.image.length, detail: input.detail, language: input.language })
  const known: Partial<SentImageInfo> = {}
  let upstreamStarted: number | undefined

  try {
    const image = await inspectImage(input.image)
    Object.assign(known, { sha256: image.sha256, mimeType: image.mimeType, bytes: image.bytes, width: image.width, height: image.height })
    const sent = await images.prepare(input.image, image, input.detail)
    Object.assign(known, { sentMimeType: sent.mimeType, sentBytes: sent.bytes.length, sentWidth: sent.width, sentHeight: sent.height })
    // The result cache: the same image as sent (after orientation, stripping, downscaling) and the same question.
    // The image is hashed once: the bytes sent are often the upload itself (inspectImage hashed those).
    const sentSha256 = sent.bytes === input.image
      ? image.sha256
      : answers === null ? undefined : createHash('sha256').update(sent.bytes).digest('hex')
    const cacheKey = answers === null || sentSha256 === undefined
      ? null
      : answers.keyFor({
        sentSha256,
        instructions: input.instructions,
        language: input.language,
        detail: input.detail
      })
    const hit = cacheKey === null || answers === null ? undefined : await answers.lookup(cacheKey, caller)
    upstreamStarted = performance.now()

    const result = hit !== undefined
      ? { ...hit, usage: null, upstreamStatus: null }
      : await vision.identify({
        image: sent.bytes,
        sha256: sentSha256,
        mimeType: sent.mimeType,
        width: sent.width,
        height: sent.height,
        detail: input.detail,
        instructions: input.instructions,
        language: input.language,
        signal: input.signal
      })
    const upstreamMs = performance.now() - upstreamStarted
    release() // recording and announcing the answer need no slot
    const identification: Identification = {
      id: base.id,
      callerId: caller.id,
      answer: result.answer,
      vehicles: result.vehicles,
      language: input.language,
      backend: vision.backend,
      model: result.model,
      backendName: result.backendName,
      image: {
        sha256: image.sha256,
        mimeType: image.mimeType,
        bytes: image.bytes,
        width: image.width,
        height: image.height,
        sentMimeType: sent.mimeType,
        sentBytes: sent.bytes.length,
        sentWidth: sent.width,
        sentHeight: sent.height,
        estimatedImageTokens: sent.estimatedImageTokens
      },
      detailUsed: detailName(input.detail),
      looks: 1,
      usage: result.usage,
      cached: hit !== undefined,
      durationMs: elapsed(),
      createdAt: new Date()
    }
    // settle: a durable subscriber (history, while webhooks are configured) may have the record written first.
    await events.settle('completed', {
      ...base, identification, detail: input.detail, upstreamMs, upstreamStatus: result.upstreamStatus, cacheKey, sentImage: sent.bytes
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
