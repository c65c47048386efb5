// How many bytes decoding an image will make the decoder produce or hold, from its header alone, so a
// decompression bomb is refused before a pixel is decoded. It bounds memory (for decoders that hold the
// whole image) and CPU (every decoder has to produce these bytes) at once.
//
//   PNG   width × height × channels × bytes per sample. An Adam7-interlaced PNG is decoded whole into
//         memory (libspng) before the first row comes out; a non-interlaced one is streamed row by row
//         but every byte is still inflated, unfiltered and shrunk: the same figure bounds its CPU.
//         Palette → 3 channels (4 with tRNS); bit depths below 8 decode to 8 bits, 16 to 16. Plus
//         up to PNG_RESAMPLER_ROWS rows of the input width: measured against the server process, a wide
//         PNG (12000×600) held about twice its raster while libvips shrank it, a square one ~1.4×.
//   JPEG  sequential, all components in one scan: the raster at the shrink-on-load scale sharp picks
//         (libjpeg decodes 1/2, 1/4, 1/8 directly from the DCT). Progressive, or a first scan without
//         every component: plus libjpeg's whole-image coefficient buffer, 2 bytes per coefficient at
//         full size whatever the scale (64 per 8×8 block, per component at its sampling).
//   GIF   the canvas (logical screen grown to every frame) as RGBA: libnsgif's frame buffer.
//   WebP  width × height × 4: lossless (VP8L) and alpha planes are decoded whole as ARGB.
import type { DecodeHeader } from './structure.ts'
import type { ImageMimeType } from './mime-types.ts'

/** Input rows libvips holds while shrinking a PNG, on top of the decoded raster (see above). */
export const PNG_RESAMPLER_ROWS = 1024

export interface DecodeEstimate {
  /** Bytes the decoder produces/holds; compared with IMAGE_MAX_DECODE_BYTES. */
  bytes: number
  /** The shrink-on-load factor sharp will use (JPEG only, else 1). */
  shrinkOnLoad: number
}

/**
 * `shrink` is the downscale factor of the resize that follows (input ÷ target on the short axis,
 * ≥ 1); only JPEG decodes at a reduced scale.
 */
export function estimateDecode (mime: ImageMimeType, header: DecodeHeader, shrink: number): DecodeEstimate {
  const { width, height, channels, bytesPerSample } = header
  switch (mime) {
    case 'image/png': {
      const row = width * channels * bytesPerSample
      return { bytes: row * height + row * Math.min(height, PNG_RESAMPLER_ROWS), shrinkOnLoad: 1 }
    }
    case 'image/gif':
    case 'image/webp':
      return { bytes: width * height * 4, shrinkOnLoad: 1 }
    case 'image/jpeg': {
      const s = jpegShrinkOnLoad(shrink)
      const raster = Math.ceil(width / s) * Math.ceil(height / s) * channels * bytesPerSample
      const frame = header.jpeg
      const buffered = frame !== undefined && (frame.progressive || frame.multiScan)
      const coefficients = buffered ? coefficientBytes(width, height, frame.components) : 0
      return { bytes: raster + coefficients, shrinkOnLoad: s }
    }
  }
}

/** sharp's choice (src/pipeline.cc, fastShrinkOnLoad): 8, 4 or 2 when the shrink allows, one step less on a whole factor. */
export function jpegShrinkOnLoad (shrink: number): number {
  let s = shrink >= 8 ? 8 : shrink >= 4 ? 4 : shrink >= 2 ? 2 : 1
  if (s > 1 && Math.trunc(shrink) === s) s /= 2
  return s
}

/** libjpeg's full coefficient buffer: per component, its blocks padded to whole MCUs, 64 × 2 bytes each. */
export function coefficientBytes (width: number, height: number, components: Array<{ h: number, v: number }>): number {
  const hMax = Math.max(...components.map(c => c.h))
  const vMax = Math.max(...components.map(c => c.v))
  const mcuColumns = Math.ceil(width / (8 * hMax))
  const mcuRows = Math.ceil(height / (8 * vMax))
  let blocks = 0
  for (const c of components) blocks += mcuColumns * c.h * mcuRows * c.v
  return blocks * 64 * 2
}
