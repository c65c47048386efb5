// One identification, start to finish: inspect the upload, prepare what the model sees, ask the
// vision service, and write the one log line operators read. The resolver only validates and calls this.
import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from './errors.ts'
import { inspectImage } from './image/inspect.ts'
import type { ImagePipeline } from './image/pipeline.ts'
import type { ImageDetail } from './image/tokens.ts'
import type { TokenUsage, VisionBackend, VisionService } from './vision/types.ts'
import type { Metrics } from './metrics/registry.ts'

export interface IdentificationInput {
  image: Buffer
  instructions: string
  language: string
  detail: ImageDetail
  signal: AbortSignal
}

export interface Identification {
  id: string
  answer: string
  language: string
  backend: VisionBackend
  model: string
  image: {
    sha256: string
    mimeType: string
    bytes: number
    width: number
    height: number
    sentMimeType: string
    sentBytes: number
    sentWidth: number
    sentHeight: number
    estimatedImageTokens: number
  }
  usage: TokenUsage | null
  durationMs: number
  createdAt: Date
}

export interface IdentificationDeps {
  vision: VisionService
  images: ImagePipeline
  metrics: Metrics
  log: FastifyBaseLogger
}

export async function identifyVehicle ({ vision, images, metrics, log: parentLog }: IdentificationDeps, input: IdentificationInput): Promise<Identification> {
  const started = performance.now()
  const id = randomUUID()
  const log = parentLog
  const line: Record<string, unknown> = { id, bytes: input.image.length, backend: vision.backend, detail: input.detail }
  const elapsed = () => Math.round(performance.now() - started)
  const backend = vision.backend
  metrics.imageBytes.inc({ direction: 'received' }, input.image.length)
  let upstreamStarted: number | undefined

  try {
    const image = await inspectImage(input.image)
    Object.assign(line, { sha256: image.sha256, mime: image.mimeType, width: image.width, height: image.height })
    const sent = await images.prepare(input.image, image, input.detail)
    Object.assign(line, { sentBytes: sent.bytes.length, sentMime: sent.mimeType, sentWidth: sent.width, sentHeight: sent.height })
    metrics.imageBytes.inc({ direction: 'sent' }, sent.bytes.length)
    upstreamStarted = performance.now()

    const result = await vision.identify({
      image: sent.bytes,
      mimeType: sent.mimeType,
      width: sent.width,
      height: sent.height,
      detail: input.detail,
      instructions: input.instructions,
      language: input.language,
      signal: input.signal
    })
    metrics.upstreamDuration.observe({ outcome: 'OK', backend }, (performance.now() - upstreamStarted) / 1000)
    metrics.identifications.inc({ outcome: 'OK', backend })
    if (result.usage) {
      metrics.modelTokens.inc({ kind: 'prompt' }, result.usage.promptTokens)
      metrics.modelTokens.inc({ kind: 'completion' }, result.usage.completionTokens)
    }
    const durationMs = elapsed()
    log.info({ identification: { ...line, model: result.model, upstreamStatus: result.upstreamStatus, usage: result.usage, durationMs } }, 'identification done')
    return {
      id,
      answer: result.answer,
      language: input.language,
      backend: vision.backend,
      model: result.model,
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
      usage: result.usage,
      durationMs,
      createdAt: new Date()
    }
  } catch (err) {
    const code = err instanceof AppError ? err.code : 'INTERNAL_SERVER_ERROR'
    if (upstreamStarted !== undefined) metrics.upstreamDuration.observe({ outcome: code, backend }, (performance.now() - upstreamStarted) / 1000)
    metrics.identifications.inc({ outcome: code, backend })
    log.info({ identification: { ...line, code, durationMs: elapsed() } }, 'identification failed')
    throw err
  }
}
