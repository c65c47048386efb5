// What the container says about an image, read by walking its segments or chunks — no decoding, a few
// microseconds (sharp's metadata() costs ~250 µs of thread-pool time per call, the largest cost on the
// request path when profiled). Dimensions and EXIF orientation come from `image-size`; this adds what
// it does not tell: is the file complete, does it carry metadata, is it animated.
import type { ImageMimeType } from './inspect.ts'

export interface ImageStructure {
  /** The file ends the way its format says it must (not cut short). */
  complete: boolean
  /** EXIF, XMP, IPTC, ICC profile or comments present. */
  hasMetadata: boolean
  /** More than one frame (animated GIF, APNG, animated WebP). */
  animated: boolean
}

export function readStructure (buf: Buffer, mime: ImageMimeType): ImageStructure {
  switch (mime) {
    case 'image/jpeg': return jpeg(buf)
    case 'image/png': return png(buf)
    case 'image/gif': return gif(buf)
    case 'image/webp': return webp(buf)
  }
}

// JPEG: segments up to the first start-of-scan; end-of-image must follow it. APP0 (JFIF) and APP14
// (Adobe colour transform) describe the encoding; any other APPn or a COM segment is metadata.
function jpeg (buf: Buffer): ImageStructure {
  let hasMetadata = false
  let at = 2
  while (at + 4 <= buf.length) {
    if (buf[at] !== 0xff) break
    const marker = buf[at + 1] as number
    if (marker === 0xff) { at++; continue } // fill byte
    if (marker === 0xda) {
      // From the end: the marker is almost always the last two bytes, and scanning the whole scan is slow.
      const complete = buf.lastIndexOf(EOI) > at
      return { complete, hasMetadata, animated: false }
    }
    if ((marker >= 0xe1 && marker <= 0xef && marker !== 0xee) || marker === 0xfe) hasMetadata = true
    at += 2 + buf.readUInt16BE(at + 2)
  }
  return { complete: false, hasMetadata, animated: false }
}
const EOI = Buffer.from([0xff, 0xd9])

// PNG: chunks (length, type, data, CRC) from after the signature to IEND.
const PNG_METADATA = new Set(['eXIf', 'iTXt', 'tEXt', 'zTXt', 'iCCP', 'tIME'])
function png (buf: Buffer): ImageStructure {
  let hasMetadata = false
  let animated = false
  let at = 8
  while (at + 12 <= buf.length) {
    const length = buf.readUInt32BE(at)
    const type = buf.toString('latin1', at + 4, at + 8)
    if (type === 'IEND') return { complete: true, hasMetadata, animated }
    if (PNG_METADATA.has(type)) hasMetadata = true
    if (type === 'acTL') animated = true
    at += 12 + length
  }
  return { complete: false, hasMetadata, animated }
}

// GIF: header, logical screen, then blocks: extensions (0x21), images (0x2c), trailer (0x3b).
function gif (buf: Buffer): ImageStructure {
  let hasMetadata = false
  let frames = 0
  let at = 13 + colourTableSize(buf[10])
  while (at < buf.length) {
    const block = buf[at]
    if (block === 0x3b) return { complete: true, hasMetadata, animated: frames > 1 }
    if (block === 0x21) {
      const label = buf[at + 1]
      if (label === 0xfe) hasMetadata = true // comment
      if (label === 0xff && buf.toString('latin1', at + 3, at + 11) === 'XMP Data') hasMetadata = true
      at = skipSubBlocks(buf, at + 2)
    } else if (block === 0x2c) {
      frames++
      at = skipSubBlocks(buf, at + 10 + colourTableSize(buf[at + 9]) + 1) // + LZW minimum code size
    } else {
      break
    }
  }
  // Some encoders pad after the trailer with zeros; a missing trailer means the file was cut short.
  return { complete: false, hasMetadata, animated: frames > 1 }
}

function colourTableSize (packed: number | undefined): number {
  return packed !== undefined && (packed & 0x80) !== 0 ? 3 * 2 ** ((packed & 0x07) + 1) : 0
}

function skipSubBlocks (buf: Buffer, at: number): number {
  while (at < buf.length) {
    const size = buf[at] as number
    at += 1 + size
    if (size === 0) return at
  }
  return buf.length
}

// WebP: RIFF size must be covered; a VP8X header carries flags for ICC, EXIF, XMP and animation.
function webp (buf: Buffer): ImageStructure {
  const complete = buf.length >= 12 && buf.readUInt32LE(4) + 8 <= buf.length
  if (buf.length < 21 || buf.toString('latin1', 12, 16) !== 'VP8X') return { complete, hasMetadata: false, animated: false }
  const flags = buf[20] as number
  return { complete, hasMetadata: (flags & (0x20 | 0x08 | 0x04)) !== 0, animated: (flags & 0x02) !== 0 }
}
