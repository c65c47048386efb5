// What the container says about an image, read by walking every segment or chunk of the file — no
// decoding (sharp's metadata() costs ~250 µs of thread-pool time per call, the largest cost on the
// request path when profiled). Dimensions and EXIF orientation come from `image-size`; this adds what
// it does not tell: is the file complete, is anything in it other than pixel data, is it animated, and
// what will the decoder have to produce (bit depth, channels, interlacing, progressive scans, GIF canvas).
//
// `pixelDataOnly` is an ALLOW-LIST verdict: true only when every segment/chunk is one of the kinds that
// carry pixels (or describe how to decode them) and nothing at all follows the end marker. It is what
// decides whether a file may be sent to the model byte for byte; metadata in a place or a form we do not
// know of (EXIF after the JPEG scan or after its end, a WebP EXIF chunk without its header flag, a PNG
// private chunk, a GIF application extension, a polyglot's payload) makes it false.
import type { ImageMimeType } from './mime-types.ts'

export interface DecodeHeader {
  /** The largest raster the decoder allocates (for a GIF: its logical screen and every frame). */
  width: number
  height: number
  /** Channels of the decoded raster: PNG palette → 3 (4 with tRNS), GIF and WebP → 4 (RGBA), JPEG → components. */
  channels: number
  /** 2 for 16-bit PNG and 12/16-bit JPEG, else 1. */
  bytesPerSample: 1 | 2
  /** Adam7 PNG: libspng decodes the whole image into memory before the first row comes out. */
  interlaced: boolean
  jpeg?: JpegFrame
  /** WebP: lossless (VP8L) or with an alpha plane. */
  webpLossless?: boolean
}

export interface JpegFrame {
  /** SOF marker (0xc0 baseline … 0xcf). */
  sof: number
  precision: number
  /** Sampling factors of each component, in frame order. */
  components: Array<{ h: number, v: number }>
  /** Progressive (SOF2, 6, 10, 14): libjpeg keeps every DCT coefficient of the image until the last scan. */
  progressive: boolean
  /** Sequential, but the first scan does not hold every component: a full coefficient buffer as well. */
  multiScan: boolean
  /** Start-of-scan segments in the file. */
  scans: number
}

export interface ImageStructure {
  /** The file ends the way its format says it must (not cut short). */
  complete: boolean
  /** Known metadata kinds seen anywhere: EXIF, XMP, IPTC, ICC profile, text or comments. */
  hasMetadata: boolean
  /** More than one frame (animated GIF, APNG, animated WebP). */
  animated: boolean
  /** Only allow-listed pixel-data segments, a plain encoding, and nothing after the end marker. */
  pixelDataOnly: boolean
  /** GIF: image descriptors in the file (a GIF with none is refused). Else 1. */
  frames: number
  /** What decoding will produce; undefined when the header could not be read. */
  decode: DecodeHeader | undefined
}

export function readStructure (buf: Buffer, mime: ImageMimeType): ImageStructure {
  switch (mime) {
    case 'image/jpeg': return jpeg(buf)
    case 'image/png': return png(buf)
    case 'image/gif': return gif(buf)
    case 'image/webp': return webp(buf)
  }
}

// JPEG: every marker segment from SOI to EOI, through the entropy-coded data of every scan (where only
// stuffed 0xff00, restart markers and fill bytes may appear). Sent unchanged only if it holds nothing but
// a JFIF APP0 without thumbnail, DQT, DHT, DRI, one SOF0/1/2 of 8-bit greyscale or YCbCr, and its scans.
const SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf])
const PROGRESSIVE_SOF = new Set([0xc2, 0xc6, 0xca, 0xce])
const PLAIN_SOF = new Set([0xc0, 0xc1, 0xc2]) // Huffman, sequential or progressive, what every decoder reads
const JPEG_TABLES = new Set([0xc4, 0xdb, 0xdd]) // DHT, DQT, DRI

function jpeg (buf: Buffer): ImageStructure {
  let hasMetadata = false
  let allowed = true
  let frame: JpegFrame | undefined
  let width = 0
  let height = 0
  let at = 2
  const result = (complete: boolean, trailing: boolean): ImageStructure => {
    const plain = frame !== undefined && PLAIN_SOF.has(frame.sof) && frame.precision === 8 &&
      (frame.components.length === 1 || frame.components.length === 3)
    return {
      complete,
      hasMetadata,
      animated: false,
      pixelDataOnly: complete && allowed && !trailing && plain,
      frames: 1,
      decode: frame === undefined
        ? undefined
        : { width, height, channels: frame.components.length, bytesPerSample: frame.precision > 8 ? 2 : 1, interlaced: false, jpeg: frame }
    }
  }
  while (at + 2 <= buf.length) {
    if (buf[at] !== 0xff) return result(false, false)
    const marker = buf[at + 1] as number
    if (marker === 0xff) { at++; continue } // fill byte
    if (marker === 0xd9) return result(true, at + 2 < buf.length)
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { // a stray standalone marker
      allowed = false
      at += 2
      continue
    }
    if (at + 4 > buf.length) return result(false, false)
    const end = at + 2 + buf.readUInt16BE(at + 2)
    if (end > buf.length || end < at + 4) return result(false, false)

    if (SOF.has(marker)) {
      if (frame !== undefined || end < at + 10) return result(false, false) // a second frame header: libjpeg refuses it too
      const count = buf[at + 9] as number
      if (end < at + 10 + 3 * count) return result(false, false)
      const components: Array<{ h: number, v: number }> = []
      for (let i = 0; i < count; i++) {
        const sampling = buf[at + 11 + 3 * i] as number
        components.push({ h: Math.max(1, sampling >> 4), v: Math.max(1, sampling & 0x0f) })
      }
      frame = {
        sof: marker, precision: buf[at + 4] as number, components, progressive: PROGRESSIVE_SOF.has(marker), multiScan: false, scans: 0
      }
      height = buf.readUInt16BE(at + 5)
      width = buf.readUInt16BE(at + 7)
    } else if (marker === 0xda) {
      if (frame === undefined) return result(false, false)
      if (frame.scans === 0 && (buf[at + 4] as number) < frame.components.length) frame.multiScan = true
      frame.scans++
      // Entropy-coded data runs to the next marker that is not stuffing (ff00), a restart (ffd0–ffd7) or fill.
      let scan = end
      for (;;) {
        const ff = buf.indexOf(0xff, scan)
        if (ff < 0 || ff + 1 >= buf.length) return result(false, false)
        const next = buf[ff + 1] as number
        if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) { scan = ff + 2; continue }
        if (next === 0xff) { scan = ff + 1; continue }
        at = ff
        break
      }
      continue
    } else if (JPEG_TABLES.has(marker)) {
      // pixel decoding tables: allowed
    } else if (marker === 0xe0 && isPlainJfif(buf, at, end)) {
      // JFIF, no thumbnail: allowed
    } else {
      allowed = false
      // APP1 EXIF/XMP, APP2 ICC, APP13 IPTC, APPn, COM; APP14 (Adobe) only describes the colour transform.
      if ((marker >= 0xe1 && marker <= 0xef && marker !== 0xee) || marker === 0xfe) hasMetadata = true
    }
    at = end
  }
  return result(false, false)
}

function isPlainJfif (buf: Buffer, at: number, end: number): boolean {
  return end - at === 18 && buf.toString('latin1', at + 4, at + 9) === 'JFIF\0' && buf[at + 16] === 0 && buf[at + 17] === 0
}

// PNG: chunks (length, type, data, CRC) from after the signature to IEND. Sent unchanged only with
// IHDR, PLTE, tRNS, IDAT and IEND, and nothing after IEND.
const PNG_METADATA = new Set(['eXIf', 'iTXt', 'tEXt', 'zTXt', 'iCCP', 'tIME'])
const PNG_PIXEL_CHUNKS = new Set(['IHDR', 'PLTE', 'tRNS', 'IDAT', 'IEND'])
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 3, 4: 2, 6: 4 }

function png (buf: Buffer): ImageStructure {
  let hasMetadata = false
  let animated = false
  let allowed = true
  let transparency = false
  let at = 8
  const header = (): DecodeHeader | undefined => {
    if (buf.length < 33 || buf.toString('latin1', 12, 16) !== 'IHDR') return undefined
    const colourType = buf[25] as number
    const channels = (PNG_CHANNELS[colourType] ?? 4) + (transparency && (colourType === 0 || colourType === 2 || colourType === 3) ? 1 : 0)
    return {
      width: buf.readUInt32BE(16), height: buf.readUInt32BE(20), channels, bytesPerSample: buf[24] === 16 ? 2 : 1, interlaced: buf[28] !== 0
    }
  }
  while (at + 12 <= buf.length) {
    const length = buf.readUInt32BE(at)
    const type = buf.toString('latin1', at + 4, at + 8)
    if (type === 'IEND') {
      return { complete: true, hasMetadata, animated, pixelDataOnly: allowed && at + 12 === buf.length, frames: 1, decode: header() }
    }
    if (!PNG_PIXEL_CHUNKS.has(type)) allowed = false
    if (PNG_METADATA.has(type)) hasMetadata = true
    if (type === 'acTL') animated = true
    if (type === 'tRNS') transparency = true
    at += 12 + length
  }
  return { complete: false, hasMetadata, animated, pixelDataOnly: false, frames: 1, decode: header() }
}

// GIF: header, logical screen, then blocks: extensions (0x21), images (0x2c), trailer (0x3b). Sent
// unchanged only with graphic control extensions and one image, and nothing after the trailer.
function gif (buf: Buffer): ImageStructure {
  let hasMetadata = false
  let allowed = true
  let frames = 0
  let width = buf.length >= 10 ? buf.readUInt16LE(6) : 0
  let height = buf.length >= 10 ? buf.readUInt16LE(8) : 0
  let at = 13 + colourTableSize(buf[10])
  const result = (complete: boolean, trailing: boolean): ImageStructure => ({
    complete,
    hasMetadata,
    animated: frames > 1,
    pixelDataOnly: complete && allowed && !trailing && frames === 1,
    frames,
    decode: { width, height, channels: 4, bytesPerSample: 1, interlaced: false }
  })
  while (at < buf.length) {
    const block = buf[at]
    if (block === 0x3b) {
      // Some encoders pad after the trailer with zeros: complete, but not sent as it is.
      return result(true, at + 1 < buf.length)
    }
    if (block === 0x21) {
      const label = buf[at + 1]
      if (label === 0xfe) hasMetadata = true // comment
      if (label === 0xff && buf.toString('latin1', at + 3, at + 11) === 'XMP Data') hasMetadata = true
      if (label !== 0xf9 || buf[at + 2] !== 4) allowed = false // only a plain graphic control extension
      at = skipSubBlocks(buf, at + 2)
    } else if (block === 0x2c) {
      if (at + 10 > buf.length) break
      frames++
      // libnsgif grows its canvas to hold a frame that lies outside the logical screen.
      width = Math.max(width, buf.readUInt16LE(at + 1) + buf.readUInt16LE(at + 5))
      height = Math.max(height, buf.readUInt16LE(at + 3) + buf.readUInt16LE(at + 7))
      at = skipSubBlocks(buf, at + 10 + colourTableSize(buf[at + 9]) + 1) // + LZW minimum code size
    } else {
      break
    }
  }
  // A missing trailer means the file was cut short.
  return result(false, false)
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
  return buf.length + 1 // ran off the end
}

// WebP: the RIFF size must be covered; every chunk is walked (flags in a VP8X header are not trusted).
// Sent unchanged only as the simple format: RIFF, one VP8 or VP8L chunk, nothing else, nothing after.
function webp (buf: Buffer): ImageStructure {
  const riffEnd = buf.length >= 12 ? buf.readUInt32LE(4) + 8 : Infinity
  const complete = riffEnd <= buf.length
  let hasMetadata = false
  let animated = false
  let lossless = false
  let width = 0
  let height = 0
  const chunks: string[] = []
  let at = 12
  const end = Math.min(riffEnd, buf.length)
  while (at + 8 <= end) {
    const type = buf.toString('latin1', at, at + 4)
    const size = buf.readUInt32LE(at + 4)
    const data = at + 8
    chunks.push(type)
    if (type === 'VP8X' && data + 10 <= end) {
      const flags = buf[data] as number
      if ((flags & (0x20 | 0x08 | 0x04)) !== 0) hasMetadata = true
      if ((flags & 0x02) !== 0) animated = true
      if ((flags & 0x10) !== 0) lossless = true // alpha: decoded like a lossless plane
      width = Math.max(width, buf.readUIntLE(data + 4, 3) + 1)
      height = Math.max(height, buf.readUIntLE(data + 7, 3) + 1)
    } else if (type === 'VP8 ' && data + 10 <= end) {
      width = Math.max(width, buf.readUInt16LE(data + 6) & 0x3fff)
      height = Math.max(height, buf.readUInt16LE(data + 8) & 0x3fff)
    } else if (type === 'VP8L' && data + 5 <= end) {
      lossless = true
      const bits = buf.readUInt32LE(data + 1)
      width = Math.max(width, (bits & 0x3fff) + 1)
      height = Math.max(height, ((bits >>> 14) & 0x3fff) + 1)
    } else if (type === 'ALPH') {
      lossless = true
    } else if (type === 'EXIF' || type === 'XMP ' || type === 'ICCP') {
      hasMetadata = true
    } else if (type === 'ANIM' || type === 'ANMF') {
      animated = true
    }
    at = data + size + (size & 1)
  }
  const simple = chunks.length === 1 && (chunks[0] === 'VP8 ' || chunks[0] === 'VP8L') && at === riffEnd
  return {
    complete,
    hasMetadata,
    animated,
    pixelDataOnly: complete && simple && riffEnd === buf.length,
    frames: 1,
    decode: width > 0 && height > 0
      ? { width, height, channels: 4, bytesPerSample: 1, interlaced: false, webpLossless: lossless }
      : undefined
  }
}

/**
 * A PNG re-muxed to its pixel-data chunks (IHDR, PLTE, tRNS, IDAT, IEND), everything else and anything
 * after IEND dropped: lossless, no decoding. Undefined when that would change the image: a dropped chunk
 * is critical (an unknown one a decoder must understand), or the PNG is animated, interlaced or 16-bit
 * (re-encoded instead, as the model expects).
 */
export function pngPixelChunksOnly (buf: Buffer): Buffer | undefined {
  if (buf.length < 33 || buf[24] === 16 || buf[28] !== 0) return undefined
  const kept: Buffer[] = [buf.subarray(0, 8)]
  let at = 8
  while (at + 12 <= buf.length) {
    const length = buf.readUInt32BE(at)
    const type = buf.toString('latin1', at + 4, at + 8)
    if (at + 12 + length > buf.length) return undefined
    if (PNG_PIXEL_CHUNKS.has(type)) kept.push(buf.subarray(at, at + 12 + length))
    else if (type.charCodeAt(0) < 0x61 || type === 'acTL') return undefined // critical (upper-case first letter), or APNG
    if (type === 'IEND') return Buffer.concat(kept)
    at += 12 + length
  }
  return undefined
}
