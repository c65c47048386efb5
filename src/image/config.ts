// Image inspection and preparation: what a photo may be, the memory its decoding may take, the re-encoding.
import { availableParallelism } from 'node:os'
import { Type, type Static } from '@sinclair/typebox'
import { StringEnum } from '../config-support.ts'
import type { RequestedDetail } from './tokens.ts'

const MiB = 1024 * 1024
const DETAILS = ['auto', 'high', 'low', 'adaptive'] as const satisfies readonly RequestedDetail[]
/** An adaptive identification keeps its LOW look when the first vehicle's confidence is at least this. */
const MIN_CONFIDENCES = ['HIGH', 'MEDIUM', 'LOW'] as const

export const ImageEnv = Type.Object({
  VISION_IMAGE_DETAIL: StringEnum(DETAILS, { default: 'adaptive' }),
  VISION_ADAPTIVE_MIN_CONFIDENCE: StringEnum(MIN_CONFIDENCES, { default: 'MEDIUM' }),
  IMAGE_MAX_INPUT_PIXELS: Type.Integer({ minimum: 1_000_000, maximum: 500_000_000, default: 50_000_000 }),
  IMAGE_MAX_SIDE: Type.Integer({ minimum: 2048, maximum: 65_535, default: 12_000 }),
  IMAGE_MAX_ASPECT_RATIO: Type.Number({ minimum: 1, maximum: 1000, default: 20 }),
  IMAGE_MAX_DECODE_BYTES: Type.Integer({ minimum: 8 * MiB, maximum: 4096 * MiB, default: 48 * MiB }),
  IMAGE_MEMORY_BUDGET_BYTES: Type.Integer({ minimum: 8 * MiB, maximum: 65_536 * MiB, default: 96 * MiB }),
  IMAGE_JPEG_QUALITY: Type.Integer({ minimum: 30, maximum: 100, default: 85 }),
  IMAGE_LOW_ORIGINAL_MAX_BYTES: Type.Integer({ minimum: 0, maximum: 20 * MiB, default: 256 * 1024 }),
  /** Unset: from the memory budget (see readImageConfig). */
  IMAGE_CONCURRENCY: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 }))
})
export type ImageEnv = Static<typeof ImageEnv>

export interface ImageConfig {
  /** Default detail level (VISION_IMAGE_DETAIL); a request's `detail` argument overrides it. */
  detail: RequestedDetail
  /** ADAPTIVE: the first vehicle's confidence at or above which the LOW look is kept (VISION_ADAPTIVE_MIN_CONFIDENCE). */
  adaptiveMinConfidence: typeof MIN_CONFIDENCES[number]
  maxInputPixels: number
  /** Longest side accepted (IMAGE_MAX_SIDE). */
  maxSide: number
  /** Long side ÷ short side accepted (IMAGE_MAX_ASPECT_RATIO). */
  maxAspectRatio: number
  /** Bytes one image's decoding may produce or hold, estimated from its header (IMAGE_MAX_DECODE_BYTES). */
  maxDecodeBytes: number
  /** Decode memory for all images at once (IMAGE_MEMORY_BUDGET_BYTES): sizes the default concurrency. */
  memoryBudgetBytes: number
  jpegQuality: number
  /**
   * LOW detail sends the upload itself, not a 512-pixel JPEG made from it, when it is at most this many bytes and
   * would be sent unchanged at HIGH (IMAGE_LOW_ORIGINAL_MAX_BYTES; 0: always make the LOW image).
   */
  lowOriginalMaxBytes: number
  concurrency: number
}

export function readImageConfig (raw: ImageEnv): ImageConfig {
  return {
    detail: raw.VISION_IMAGE_DETAIL,
    adaptiveMinConfidence: raw.VISION_ADAPTIVE_MIN_CONFIDENCE,
    maxInputPixels: raw.IMAGE_MAX_INPUT_PIXELS,
    maxSide: raw.IMAGE_MAX_SIDE,
    maxAspectRatio: raw.IMAGE_MAX_ASPECT_RATIO,
    maxDecodeBytes: raw.IMAGE_MAX_DECODE_BYTES,
    memoryBudgetBytes: raw.IMAGE_MEMORY_BUDGET_BYTES,
    jpegQuality: raw.IMAGE_JPEG_QUALITY,
    lowOriginalMaxBytes: raw.IMAGE_LOW_ORIGINAL_MAX_BYTES,
    // As many worst-case decodes as the budget holds (more than the cores would only queue in libvips).
    concurrency: raw.IMAGE_CONCURRENCY ??
      Math.max(1, Math.min(availableParallelism(), Math.floor(raw.IMAGE_MEMORY_BUDGET_BYTES / raw.IMAGE_MAX_DECODE_BYTES)))
  }
}
