// Send the model only what it uses. Between validation and the vision service:
// refuse decompression bombs from the header, apply EXIF orientation, strip all metadata (EXIF with
// GPS, XMP, IPTC, comments), downscale (never upscale) to what the model looks at for the detail
// level, and re-encode as JPEG — or send the original bytes when they already fit and carry nothing.
import sharp from 'sharp'
import pLimit, { type LimitFunction } from 'p-limit'
import { badUserInput } from '../errors.ts'
import type { ImageMimeType, InspectedImage } from './inspect.ts'
import { estimateImageTokens, targetSize, type ImageDetail } from './tokens.ts'

export type { ImageDetail } from './tokens.ts'

export interface PipelineOptions {
  /** Refuse images with more pixels than this (IMAGE_MAX_INPUT_PIXELS). */
  maxInputPixels: number
  /** JPEG quality of re-encoded images (IMAGE_JPEG_QUALITY). */
  jpegQuality: number
  /** sharp jobs at once (IMAGE_CONCURRENCY); images sent unchanged never wait for a slot. */
  concurrency: number
}

export interface PreparedImage {
  bytes: Buffer
  mimeType: ImageMimeType
  width: number
  height: number
  detail: ImageDetail
  /** True when the original bytes are sent unchanged. */
  original: boolean
  /** GPT-4o's image token cost of what is sent; the same as for the upload at this detail. */
  estimatedImageTokens: number
}

export interface ImagePipeline {
  prepare (image: Buffer, inspected: InspectedImage, detail: ImageDetail): Promise<PreparedImage>
}

export function createImagePipeline (options: PipelineOptions): ImagePipeline {
  // sharp runs on libuv's pool, off the event loop; this bounds how many big decodes run at once
  // so a burst of 12 MP photos queues instead of taking every thread.
  const limit: LimitFunction = pLimit(options.concurrency)

  return {
    async prepare (image, inspected, detail) {
      const pixels = inspected.width * inspected.height
      if (pixels > options.maxInputPixels) {
        // Known from the header: refused before a single pixel is allocated.
        throw badUserInput(`The image is too large: ${inspected.width}×${inspected.height} pixels ` +
          `(${(pixels / 1e6).toFixed(1)} megapixels); at most ${(options.maxInputPixels / 1e6).toFixed(1)} megapixels are accepted.`)
      }
      const rotated = inspected.orientation !== undefined && inspected.orientation >= 5
      const width = rotated ? inspected.height : inspected.width
      const height = rotated ? inspected.width : inspected.height
      const target = targetSize(width, height, detail)
      const estimatedImageTokens = estimateImageTokens(width, height, detail)
      const fits = target.width === width && target.height === height

      if (fits && !inspected.hasMetadata && (inspected.orientation ?? 1) === 1) {
        return { bytes: image, mimeType: inspected.mimeType, width, height, detail, original: true, estimatedImageTokens }
      }

      const bytes = await limit(() => reencode(image, target, options))
      return { bytes, mimeType: 'image/jpeg', width: target.width, height: target.height, detail, original: false, estimatedImageTokens }
    }
  }
}

async function reencode (image: Buffer, target: { width: number, height: number }, options: PipelineOptions): Promise<Buffer> {
  try {
    return await sharp(image, { limitInputPixels: options.maxInputPixels, failOn: 'truncated', pages: 1 })
      .rotate() // apply EXIF orientation; the output carries none (sharp strips metadata by default)
      // Shrink-on-load: sharp decodes JPEG and WebP at 1/2, 1/4 or 1/8 scale when the target allows.
      .resize(target.width, target.height, { fit: 'fill', withoutEnlargement: true })
      .flatten({ background: '#ffffff' }) // transparency on white: JPEG has no alpha
      .jpeg({ quality: options.jpegQuality, chromaSubsampling: '4:2:0' })
      .toBuffer()
  } catch (err) {
    throw badUserInput('The image is corrupt and cannot be decoded. Send a JPEG, PNG, WebP or non-animated GIF image.', { reason: (err as Error).message.slice(0, 120) })
  }
}
