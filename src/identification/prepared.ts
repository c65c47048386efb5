// An identification in two halves, for an entry point that asks the model itself (a bulk job's Global Batch):
// `prepare` runs the image half exactly as the flow does (inspect, strip, orient, downscale to the detail) and
// holds no vision slot; `answered` announces the model's answer (or the failure) like the flow, with the item's
// id, so that history records it and every subscriber sees it. A photo that cannot be prepared is announced
// failed there and then, with the code identifyVehicle gives.
import { AppError } from '../errors.ts'
import { inspectImage } from '../image/inspect.ts'
import type { ImagePipeline, PreparedImage } from '../image/pipeline.ts'
import type { ImageDetail, RequestedDetail } from '../image/tokens.ts'
import type { IdentifyResult, VisionService } from '../vision/types.ts'
import type { AdaptiveReport } from './adaptive.ts'
import type { IdentificationEvents } from './events.ts'
import type { IdentificationOrigin } from './flow.ts'
import { detailName, type Identification, type SentImageInfo, type UploadFacts } from './types.ts'

/** What one photo of a bulk job is asked with. */
export interface PreparedCall {
  /** `identificationId` is required: the item's id. */
  origin: IdentificationOrigin & { identificationId: string }
  instructions: string
  language: string
  detail: RequestedDetail
}

export interface PreparedIdentification {
  /** The upload as received: what `Identification.image` reports of it. */
  upload: UploadFacts
  /** What the model is sent (its bytes, type, size, detail). */
  sent: PreparedImage
  /** Both, as history keeps them (Identification.image). */
  info: SentImageInfo
  /** ADAPTIVE asked with `low`: its LOW image, made from the same decode as `sent` (its HIGH one). */
  low?: PreparedImage
}

export interface PrepareOptions {
  signal?: AbortSignal
  /** ADAPTIVE only: the LOW image too, from the same decode (a Global Batch asks the LOW look in its own batch). */
  low?: boolean
}

/** An ADAPTIVE job's photos are prepared for its closer look (HIGH): its LOW look is made from that (online) or beside it (`low`). */
export function preparedDetail (detail: RequestedDetail): ImageDetail {
  return detail === 'adaptive' ? 'high' : detail
}

export interface PreparedDeps {
  vision: VisionService
  images: ImagePipeline
  events: IdentificationEvents
}

/** Inspects and prepares `image`; when it cannot be, announces the item failed (its code) and throws that error. */
export async function prepareIdentification (
  { vision, images, events }: PreparedDeps, call: PreparedCall, image: Buffer, { signal, low: withLow = false }: PrepareOptions = {}
): Promise<PreparedIdentification> {
  const started = performance.now()
  try {
    const inspected = await inspectImage(image)
    const detail = preparedDetail(call.detail)
    const options = signal === undefined ? {} : { signal }
    let sent: PreparedImage
    let low: PreparedImage | undefined
    if (withLow && call.detail === 'adaptive') {
      // One decode for both, as online (Promise.all: neither rejection is left unhandled).
      const both = images.prepareLowAndHigh(image, inspected, options)
      ;[low, sent] = await Promise.all([both.low, both.high])
    } else {
      sent = await images.prepare(image, inspected, detail, options)
    }
    const { sha256, mimeType, bytes, width, height } = inspected
    const upload = { sha256, mimeType, bytes, width, height }
    return { upload, sent, info: sentInfo(upload, sent), ...(low === undefined ? {} : { low }) }
  } catch (err) {
    if (signal?.aborted === true) throw err // stopping: the item is prepared again later, nothing announced
    await announceFailure({ vision, events }, call, err, image.length, performance.now() - started)
    throw err
  }
}

/** What history keeps of a prepared photo (the upload's facts, the sent image's). */
export function sentInfo (upload: UploadFacts, sent: PreparedImage): SentImageInfo {
  return {
    ...upload,
    sentMimeType: sent.mimeType,
    sentBytes: sent.bytes.length,
    sentWidth: sent.width,
    sentHeight: sent.height,
    estimatedImageTokens: sent.estimatedImageTokens,
    detailUsed: detailName(sent.detail),
    looks: 1
  }
}

/**
 * How a bulk item's answer came: the model's result (`batch`: from a Global Batch, whose tokens usage prices at the
 * batch prices; `adaptive`: an ADAPTIVE item's looks), or why it failed (an AppError's code, or another error).
 */
export type PreparedOutcome = { result: IdentifyResult, batch?: boolean, adaptive?: PreparedLooks } | { error: unknown }

/** An ADAPTIVE item answered in batches: how many looks (the prepared info's detailUsed says which answered), and why. */
export interface PreparedLooks {
  looks: 1 | 2
  report: AdaptiveReport
}

/**
 * Announces a prepared item's outcome as the flow announces an identification's (history records it with the
 * item's id; webhooks and subscriptions skip bulk items). Returns the Identification when it succeeded.
 */
export async function announceAnswer (
  { vision, events }: Pick<PreparedDeps, 'vision' | 'events'>,
  call: PreparedCall,
  prepared: PreparedIdentification,
  outcome: PreparedOutcome,
  durationMs = 0
): Promise<Identification | undefined> {
  const { caller, requestId, identificationId: id, bulkJobId } = call.origin
  if ('error' in outcome) {
    await announceFailure({ vision, events }, call, outcome.error, prepared.upload.bytes, durationMs, prepared.info)
    return undefined
  }
  const { result } = outcome
  const identification: Identification = {
    id,
    callerId: caller.id,
    answer: result.answer,
    vehicles: result.vehicles,
    language: call.language,
    backend: vision.backend,
    model: result.model,
    backendName: result.backendName,
    bulkJobId: bulkJobId ?? null,
    image: prepared.info,
    detailUsed: prepared.info.detailUsed,
    looks: outcome.adaptive?.looks ?? 1,
    usage: result.usage,
    cached: false,
    durationMs: Math.round(durationMs),
    createdAt: new Date()
  }
  await events.settle('completed', {
    id,
    caller,
    requestId,
    backend: vision.backend,
    ...(bulkJobId === undefined ? {} : { bulkJobId }),
    identification,
    detail: call.detail,
    upstreamMs: durationMs,
    upstreamStatus: result.upstreamStatus,
    cacheKey: null,
    sentImage: prepared.sent.bytes,
    ...(outcome.batch === true ? { batch: true } : {}),
    ...(outcome.adaptive === undefined ? {} : { adaptive: outcome.adaptive.report })
  })
  return identification
}

/** Announces an item failed before it could be prepared (an archive entry refused: its code, e.g. PAYLOAD_TOO_LARGE). */
export async function announceFailure (
  { vision, events }: Pick<PreparedDeps, 'vision' | 'events'>,
  call: PreparedCall,
  error: unknown,
  bytes: number,
  durationMs: number,
  image?: Partial<SentImageInfo>
): Promise<void> {
  const { caller, requestId, identificationId: id, bulkJobId } = call.origin
  await events.settle('failed', {
    id,
    caller,
    requestId,
    backend: vision.backend,
    ...(bulkJobId === undefined ? {} : { bulkJobId }),
    code: error instanceof AppError ? error.code : 'INTERNAL_SERVER_ERROR',
    error,
    bytes,
    detail: call.detail,
    durationMs: Math.round(durationMs),
    language: call.language,
    ...(image === undefined ? {} : { image })
  })
}
