// Send the model only what it uses. Between validation and the vision service:
// refuse decompression bombs and extreme shapes from the header (pixels, side, aspect ratio, and the
// bytes decoding would produce given bit depth, channels, interlacing and progressive scans), apply
// EXIF orientation, strip all metadata (EXIF with GPS, XMP, IPTC, ICC, comments, private chunks),
// downscale (never upscale) to what the model looks at for the detail level, convert to sRGB and
// re-encode as JPEG — or send the original bytes when they already fit and hold pixel data only (a PNG
// that fits is re-muxed to its pixel chunks instead, losslessly).
import sharp from 'sharp'
import pLimit, { type LimitFunction } from 'p-limit'
import { BadUserInputError, type BadUserInputDetails } from '../errors.ts'
import type { InspectedImage } from './inspect.ts'
import type { ImageMimeType } from './mime-types.ts'
import { estimateDecode } from './decode-cost.ts'
import { pngPixelChunksOnly } from './structure.ts'
import { estimateImageTokens, targetSize, type ImageDetail } from './tokens.ts'

export type { ImageDetail } from './tokens.ts'

export interface PipelineOptions {
  /** Refuse images with more pixels than this (IMAGE_MAX_INPUT_PIXELS). */
  maxInputPixels: number
  /** Refuse images with a side longer than this (IMAGE_MAX_SIDE). */
  maxSide: number
  /** Refuse images whose long side is more than this many times the short one (IMAGE_MAX_ASPECT_RATIO). */
  maxAspectRatio: number
  /** Refuse images whose decoding would produce more bytes than this (IMAGE_MAX_DECODE_BYTES). */
  maxDecodeBytes: number
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
  /** Bytes decoding was estimated to produce (0 when sent unchanged: nothing is decoded). */
  estimatedDecodeBytes: number
}

export interface ImagePipeline {
  /**
   * `signal`: work no longer wanted (an adaptive identification's HIGH image after a good LOW look);
   * checked before the sharp job starts.
   */
  prepare (image: Buffer, inspected: InspectedImage, detail: ImageDetail, options?: PrepareOptions): Promise<PreparedImage>
}

export interface PrepareOptions {
  signal?: AbortSignal
}

/** `extensions.reason` of the refusals made here, so clients can tell them apart. */
export type ImageRefusal = 'IMAGE_TOO_MANY_PIXELS' | 'IMAGE_SIDE_TOO_LONG' | 'IMAGE_ASPECT_RATIO' | 'IMAGE_DECODE_TOO_LARGE' |
  'IMAGE_TOO_MANY_SCANS' | 'IMAGE_UNDECODABLE'

/** Progressive JPEG encoders write 10 or so scans (libjpeg's default script), mozjpeg up to ~20. */
export const MAX_JPEG_SCANS = 100

export function createImagePipeline (options: PipelineOptions): ImagePipeline {
  // sharp runs on libuv's pool, off the event loop; this bounds how many decodes run at once, and with
  // the per-image decode bound, how much memory they take (IMAGE_CONCURRENCY × IMAGE_MAX_DECODE_BYTES).
  const limit: LimitFunction = pLimit(options.concurrency)
  // libvips' operation cache would keep decoded images and their buffers alive after a request.
  sharp.cache(false)

  return {
    async prepare (image, inspected, detail, { signal } = {}) {
      const { decode } = inspected
      // Everything the decoder will allocate, from the header: the larger of what image-size read and
      // the container says (a GIF frame outside its logical screen, a WebP canvas and bitstream).
      const extentW = Math.max(inspected.width, decode.width)
      const extentH = Math.max(inspected.height, decode.height)
      const pixels = extentW * extentH
      if (pixels > options.maxInputPixels) {
        throw refuse('IMAGE_TOO_MANY_PIXELS', `The image is too large: ${extentW}×${extentH} pixels ` +
          `(${(pixels / 1e6).toFixed(1)} megapixels); at most ${(options.maxInputPixels / 1e6).toFixed(1)} megapixels are accepted.`)
      }
      if (Math.max(extentW, extentH) > options.maxSide) {
        throw refuse('IMAGE_SIDE_TOO_LONG', `The image is too large: ${extentW}×${extentH} pixels; no side may be longer than ${options.maxSide} pixels.`)
      }
      const ratio = Math.max(extentW, extentH) / Math.min(extentW, extentH)
      if (ratio > options.maxAspectRatio) {
        throw refuse('IMAGE_ASPECT_RATIO', `The image's shape is not a photo's: ${extentW}×${extentH} pixels is ${ratio.toFixed(1)}:1; ` +
          `at most ${options.maxAspectRatio}:1 is accepted.`)
      }

      const rotated = inspected.orientation !== undefined && inspected.orientation >= 5
      const width = rotated ? inspected.height : inspected.width
      const height = rotated ? inspected.width : inspected.height
      const target = targetSize(width, height, detail)
      const estimatedImageTokens = estimateImageTokens(width, height, detail)
      const fits = target.width === width && target.height === height

      if (decode.jpeg !== undefined && decode.jpeg.scans > MAX_JPEG_SCANS) {
        // Each progressive scan is a pass over every block of the image: thousands of empty scans cost
        // seconds of CPU in a file of a few KB. Encoders write about ten.
        throw refuse('IMAGE_TOO_MANY_SCANS', `The JPEG has ${decode.jpeg.scans} scans; at most ${MAX_JPEG_SCANS} are accepted.`)
      }
      const shrink = Math.min(width / target.width, height / target.height)
      const estimate = estimateDecode(inspected.mimeType, decode, shrink)
      if (estimate.bytes > options.maxDecodeBytes) {
        // Known from the header: refused before a single pixel is allocated.
        throw refuse('IMAGE_DECODE_TOO_LARGE', `The image would take ${mib(estimate.bytes)} MiB to decode ` +
          `(${describe(inspected, extentW, extentH)}); at most ${mib(options.maxDecodeBytes)} MiB are accepted. Send a smaller, 8-bit, non-interlaced or baseline image.`,
        { estimatedDecodeBytes: estimate.bytes, maxDecodeBytes: options.maxDecodeBytes })
      }

      if (fits && inspected.pixelDataOnly && (inspected.orientation ?? 1) === 1) {
        return {
          bytes: image, mimeType: inspected.mimeType, width, height, detail, original: true, estimatedImageTokens, estimatedDecodeBytes: 0
        }
      }
      if (fits && inspected.mimeType === 'image/png' && (inspected.orientation ?? 1) === 1) {
        // A PNG with other chunks (pHYs, text, private ones) or bytes after IEND: re-muxed, lossless.
        const remuxed = pngPixelChunksOnly(image)
        if (remuxed !== undefined) {
          return { bytes: remuxed, mimeType: 'image/png', width, height, detail, original: false, estimatedImageTokens, estimatedDecodeBytes: 0 }
        }
      }

      const bytes = await limit(async () => {
        // Waiting for a slot may take a while: a job nobody wants any more does not take one.
        signal?.throwIfAborted()
        return await reencode(image, target, options)
      })
      return {
        bytes, mimeType: 'image/jpeg', width: target.width, height: target.height, detail, original: false, estimatedImageTokens, estimatedDecodeBytes: estimate.bytes
      }
    }
  }
}

async function reencode (image: Buffer, target: { width: number, height: number }, options: PipelineOptions): Promise<Buffer> {
  try {
    // sequentialRead: decoders stream top to bottom where the format allows. autoOrient applies EXIF
    // orientation after the resize, so JPEG and WebP keep their shrink-on-load (1/2, 1/4, 1/8 scale).
    return await sharp(image, { limitInputPixels: options.maxInputPixels, failOn: 'truncated', pages: 1, sequentialRead: true, autoOrient: true })
      .resize(target.width, target.height, { fit: 'fill', withoutEnlargement: true })
      .flatten({ background: '#ffffff' }) // transparency on white: JPEG has no alpha
      .toColourspace('srgb') // CMYK, greyscale and 16-bit in, 8-bit sRGB out
      // The output carries no metadata (sharp strips it by default): no EXIF, ICC, XMP, comments.
      .jpeg({ quality: options.jpegQuality, chromaSubsampling: '4:2:0' })
      .toBuffer()
  } catch {
    // libvips' message is not passed on: it can quote the file's own bytes (a bad marker, a chunk name).
    throw refuse('IMAGE_UNDECODABLE', 'The image is corrupt and cannot be decoded. Send a JPEG, PNG, WebP or non-animated GIF image.')
  }
}

function refuse (reason: ImageRefusal, message: string, extensions: Omit<BadUserInputDetails, 'reason'> = {}): BadUserInputError {
  return new BadUserInputError(message, { reason, ...extensions })
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)

function describe ({ mimeType, decode }: InspectedImage, width: number, height: number): string {
  const bits = decode.jpeg?.precision ?? decode.bytesPerSample * 8
  const parts = [`${width}×${height}`, `${decode.channels} channel${decode.channels === 1 ? '' : 's'}`, `${bits}-bit`]
  if (decode.interlaced) parts.push('interlaced')
  if (decode.jpeg?.progressive) parts.push('progressive')
  else if (decode.jpeg?.multiScan) parts.push('multi-scan')
  return `${mimeType.slice(6).toUpperCase()} ${parts.join(', ')}`
}
