// Send the model only what it uses. Between validation and the vision service:
// refuse decompression bombs and extreme shapes from the header (pixels, side, aspect ratio, and the
// bytes decoding would produce given bit depth, channels, interlacing and progressive scans), apply
// EXIF orientation, strip all metadata (EXIF with GPS, XMP, IPTC, ICC, comments, private chunks),
// downscale (never upscale) to what the model looks at for the detail level, convert to sRGB and
// re-encode as JPEG — or send the original bytes when they already fit and hold pixel data only (a PNG
// that fits is re-muxed to its pixel chunks instead, losslessly).
import sharp, { type JpegOptions, type OutputInfo, type SharpOptions } from 'sharp'
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
  /**
   * LOW detail sends the upload as it is when it is at most this many bytes and would be sent unchanged at HIGH
   * (IMAGE_LOW_ORIGINAL_MAX_BYTES; 0: never). The model shrinks it to 512 pixels itself and charges 85 tokens
   * either way; making the smaller JPEG costs a decode and an encode (~3–8 ms of CPU for an 800×600 photo) to save
   * a few tens of KB of upload.
   */
  lowOriginalMaxBytes: number
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
  /**
   * True when the image was only described (ImagePipeline.describe): `bytes` are the upload's, and width, height,
   * mimeType and the token estimate are those of the image that would have been sent.
   */
  described?: boolean
}

export interface ImagePipeline {
  /**
   * `signal`: work no longer wanted (an adaptive identification's HIGH image after a good LOW look);
   * checked before the sharp job starts.
   */
  prepare (image: Buffer, inspected: InspectedImage, detail: ImageDetail, options?: PrepareOptions): Promise<PreparedImage>
  /**
   * ADAPTIVE's two images from one decode: the image is decoded once at the HIGH size, the LOW image made from
   * that (resolved as soon as it is encoded), then the HIGH one, byte for byte what `prepare(..., 'high')` makes.
   * `signal` aborted once the LOW image is out: the HIGH one is not encoded. An image that fits at a detail is
   * sent as it is there, as `prepare` does.
   */
  prepareLowAndHigh (image: Buffer, inspected: InspectedImage, options?: PrepareOptions): LowAndHigh
  /**
   * What `prepare` would send, without encoding it, for a backend that reads no pixels (the simulated one): the
   * same refusals, size, type and token estimate; when the image would be re-encoded, `bytes` is the upload and
   * `described` is true (nothing was encoded: its size in bytes is unknown).
   */
  describe (image: Buffer, inspected: InspectedImage, detail: ImageDetail): PreparedImage
}

export interface LowAndHigh { low: Promise<PreparedImage>, high: Promise<PreparedImage> }

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

  /** The refusals, and either the image as it can be sent without sharp or what sharp has to make. */
  function plan (image: Buffer, inspected: InspectedImage, detail: ImageDetail): Plan {
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
        `(${describeImage(inspected, extentW, extentH)}); at most ${mib(options.maxDecodeBytes)} MiB are accepted. Send a smaller, 8-bit, non-interlaced or baseline image.`,
      { estimatedDecodeBytes: estimate.bytes, maxDecodeBytes: options.maxDecodeBytes })
    }

    if ((fits || (detail === 'low' && lowAsItIs(image, width, height))) && inspected.pixelDataOnly && (inspected.orientation ?? 1) === 1) {
      const ready = {
        bytes: image, mimeType: inspected.mimeType, width, height, detail, original: true, estimatedImageTokens, estimatedDecodeBytes: 0
      }
      return { ready }
    }
    if (fits && inspected.mimeType === 'image/png' && (inspected.orientation ?? 1) === 1) {
      // A PNG with other chunks (pHYs, text, private ones) or bytes after IEND: re-muxed, lossless.
      const remuxed = pngPixelChunksOnly(image)
      if (remuxed !== undefined) {
        return { ready: { bytes: remuxed, mimeType: 'image/png', width, height, detail, original: false, estimatedImageTokens, estimatedDecodeBytes: 0 } }
      }
    }
    return { target, estimatedImageTokens, estimatedDecodeBytes: estimate.bytes }
  }

  /** A small upload that HIGH would send unchanged goes as it is at LOW too (the caller checks it holds pixels only). */
  function lowAsItIs (image: Buffer, width: number, height: number): boolean {
    if (image.length > options.lowOriginalMaxBytes) return false
    const high = targetSize(width, height, 'high')
    return high.width === width && high.height === height
  }

  const made = (detail: ImageDetail, p: Encode, bytes: Buffer): PreparedImage => ({
    bytes, mimeType: 'image/jpeg', width: p.target.width, height: p.target.height, detail, original: false, estimatedImageTokens: p.estimatedImageTokens, estimatedDecodeBytes: p.estimatedDecodeBytes
  })

  return {
    async prepare (image, inspected, detail, { signal } = {}) {
      const p = plan(image, inspected, detail)
      if ('ready' in p) return p.ready
      const bytes = await limit(async () => {
        // Waiting for a slot may take a while: a job nobody wants any more does not take one.
        signal?.throwIfAborted()
        return await reencode(image, p.target, options)
      })
      return made(detail, p, bytes)
    },

    prepareLowAndHigh (image, inspected, { signal } = {}) {
      let low: Promise<PreparedImage>
      let high: Promise<PreparedImage>
      try {
        const lowPlan = plan(image, inspected, 'low')
        const highPlan = plan(image, inspected, 'high')
        if ('ready' in lowPlan || 'ready' in highPlan) {
          // At most one image to make (the LOW one fits only if the HIGH one does): nothing to share.
          low = 'ready' in lowPlan ? Promise.resolve(lowPlan.ready) : this.prepare(image, inspected, 'low')
          high = 'ready' in highPlan ? Promise.resolve(highPlan.ready) : this.prepare(image, inspected, 'high', { signal })
        } else {
          let lowMade!: (bytes: Buffer) => void
          const lowBytes = new Promise<Buffer>(resolve => { lowMade = resolve })
          const highBytes = limit(async () => await reencodeBoth(image, lowPlan.target, highPlan.target, options, lowMade, signal))
          // The job fails before the LOW image is made (a corrupt file): the LOW image fails with it.
          low = Promise.race([lowBytes, highBytes.then(() => new Promise<Buffer>(() => {}))]).then(bytes => made('low', lowPlan, bytes))
          high = highBytes.then(bytes => made('high', highPlan, bytes))
        }
      } catch (err) {
        low = Promise.reject(err)
        high = Promise.reject(err)
      }
      high.catch(() => {}) // awaited only when a second look is taken
      return { low, high }
    },

    describe (image, inspected, detail) {
      const p = plan(image, inspected, detail)
      if ('ready' in p) return p.ready
      return { ...made(detail, p, image), described: true }
    }
  }
}

interface Encode { target: { width: number, height: number }, estimatedImageTokens: number, estimatedDecodeBytes: number }
type Plan = { ready: PreparedImage } | Encode

/** sharp's input options for an upload: streamed where the format allows, EXIF orientation applied after the resize. */
function input (options: PipelineOptions): SharpOptions {
  return { limitInputPixels: options.maxInputPixels, failOn: 'truncated', pages: 1, sequentialRead: true, autoOrient: true }
}

const JPEG = (options: PipelineOptions): JpegOptions => ({ quality: options.jpegQuality, chromaSubsampling: '4:2:0' })

/**
 * One decode, two images: the HIGH-size pixels (the same steps as `reencode` up to the encoder, so the HIGH JPEG
 * is byte for byte `reencode`'s), the LOW image resized from them and handed over first, then the HIGH one
 * unless `signal` says it is no longer wanted.
 */
async function reencodeBoth (
  image: Buffer, low: { width: number, height: number }, high: { width: number, height: number },
  options: PipelineOptions, lowMade: (bytes: Buffer) => void, signal: AbortSignal | undefined
): Promise<Buffer> {
  let pixels: { data: Buffer, info: OutputInfo }
  try {
    pixels = await sharp(image, input(options))
      .resize(high.width, high.height, { fit: 'fill', withoutEnlargement: true })
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true })
  } catch {
    throw refuse('IMAGE_UNDECODABLE', 'The image is corrupt and cannot be decoded. Send a JPEG, PNG, WebP or non-animated GIF image.')
  }
  const raw = { raw: { width: pixels.info.width, height: pixels.info.height, channels: pixels.info.channels } }
  lowMade(await sharp(pixels.data, raw).resize(low.width, low.height, { fit: 'fill' }).jpeg(JPEG(options)).toBuffer())
  // A turn for whoever waits on the LOW image (a cached answer may make the HIGH one needless).
  await new Promise(resolve => setImmediate(resolve))
  signal?.throwIfAborted()
  return await sharp(pixels.data, raw).jpeg(JPEG(options)).toBuffer()
}

async function reencode (image: Buffer, target: { width: number, height: number }, options: PipelineOptions): Promise<Buffer> {
  try {
    // sequentialRead: decoders stream top to bottom where the format allows. autoOrient applies EXIF
    // orientation after the resize, so JPEG and WebP keep their shrink-on-load (1/2, 1/4, 1/8 scale).
    return await sharp(image, input(options))
      .resize(target.width, target.height, { fit: 'fill', withoutEnlargement: true })
      .flatten({ background: '#ffffff' }) // transparency on white: JPEG has no alpha
      .toColourspace('srgb') // CMYK, greyscale and 16-bit in, 8-bit sRGB out
      // The output carries no metadata (sharp strips it by default): no EXIF, ICC, XMP, comments.
      .jpeg(JPEG(options))
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

function describeImage ({ mimeType, decode }: InspectedImage, width: number, height: number): string {
  const bits = decode.jpeg?.precision ?? decode.bytesPerSample * 8
  const parts = [`${width}×${height}`, `${decode.channels} channel${decode.channels === 1 ? '' : 's'}`, `${bits}-bit`]
  if (decode.interlaced) parts.push('interlaced')
  if (decode.jpeg?.progressive) parts.push('progressive')
  else if (decode.jpeg?.multiScan) parts.push('multi-scan')
  return `${mimeType.slice(6).toUpperCase()} ${parts.join(', ')}`
}
