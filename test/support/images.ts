// Real images made with sharp, so the server's sniffing and header reading meet genuine files.
import { once } from 'node:events'
import { crc32, createDeflate } from 'node:zlib'
import sharp from 'sharp'

const colour = { r: 40, g: 120, b: 60 }

export async function jpeg (
  width = 64, height = 48, options: { exif?: Record<string, Record<string, string>>, orientation?: number } = {}
): Promise<Buffer> {
  let image = sharp({ create: { width, height, channels: 3, background: colour } }).jpeg({ quality: 80 })
  if (options.exif) image = image.withExifMerge(options.exif)
  if (options.orientation) image = image.withMetadata({ orientation: options.orientation })
  return await image.toBuffer()
}

/**
 * A JPEG photo of one colour with noise, so it compresses like a photo (a few MB at 12 MP) rather than to a
 * few KB; the noise is symmetric and seeded by the colour and size, so the mean colour stays `rgb` (keep
 * channels within 16..239 so clipping cannot shift it) and the same call makes the same bytes. With
 * fake-azure.ts's `detailAwareAnswers`, the colour is the photo's key.
 */
export async function photoOfColour (rgb: { r: number, g: number, b: number }, width: number, height: number): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3)
  let seed = (((rgb.r * 256 + rgb.g) * 256 + rgb.b) ^ (width * 65_537) ^ (height * 257)) >>> 0 || 1
  const amplitude = 12
  for (let at = 0; at < pixels.length; at += 3) {
    // xorshift32: cheap, deterministic noise in -amplitude..amplitude, the same for the three channels (luminance grain)
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0
    const noise = (seed % (2 * amplitude + 1)) - amplitude
    pixels[at] = rgb.r + noise
    pixels[at + 1] = rgb.g + noise
    pixels[at + 2] = rgb.b + noise
  }
  return await sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer()
}

/** A clean PNG: sharp's, without the pHYs chunk it writes (not pixel data, so the server would re-mux it). */
export async function png (width = 64, height = 48, alpha = false): Promise<Buffer> {
  return withoutPngChunks(await sharp({ create: { width, height, channels: alpha ? 4 : 3, background: alpha ? { ...colour, alpha: 0.5 } : colour } }).png().toBuffer(), ['pHYs'])
}

/** `file` (a PNG) without the chunks of these types. */
export function withoutPngChunks (file: Buffer, types: string[]): Buffer {
  const kept: Buffer[] = [file.subarray(0, 8)]
  for (let at = 8; at + 12 <= file.length;) {
    const end = at + 12 + file.readUInt32BE(at)
    if (!types.includes(file.toString('latin1', at + 4, at + 8))) kept.push(file.subarray(at, end))
    at = end
  }
  return Buffer.concat(kept)
}

export async function webp (width = 64, height = 48): Promise<Buffer> {
  return await sharp({ create: { width, height, channels: 3, background: colour } }).webp().toBuffer()
}

export async function gif (width = 64, height = 48): Promise<Buffer> {
  return await sharp({ create: { width, height, channels: 3, background: colour } }).gif().toBuffer()
}

/** A two-frame animated GIF. */
export async function animatedGif (width = 32, height = 32): Promise<Buffer> {
  const frames = await Promise.all(['#f00', '#00f'].map(background =>
    sharp({ create: { width, height, channels: 3, background } }).png().toBuffer()))
  return await sharp(frames, { join: { animated: true } }).gif({ loop: 0, delay: [100, 100] }).toBuffer()
}

/** A GPS-tagged photo as a phone would take it. */
export async function jpegWithGps (width = 800, height = 600): Promise<Buffer> {
  return await jpeg(width, height, {
    exif: {
      IFD0: { Make: 'TestPhone', Model: 'Field 1' },
      IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '52/1 31/1 0/1', GPSLongitudeRef: 'E', GPSLongitude: '13/1 24/1 0/1' }
    }
  })
}

export const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>')
export const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n')
export const text = Buffer.from('this is not an image, just some text\n')
/** The start of a HEIC file: an ftyp box with brand heic. */
export const heic = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypheic'), Buffer.from([0, 0, 0, 0]), Buffer.from('mif1heic'), Buffer.alloc(64)])

// Hand-built containers, for shapes no encoder writes: huge or extreme headers with tiny bodies,
// and metadata hidden where a header-only check does not look.

/** A PNG chunk: length, type, data, CRC over type + data. */
export function pngChunk (type: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'latin1')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0)
  return Buffer.concat([head, data, crc])
}

export interface RawPngOptions {
  width: number
  height: number
  /** 1, 2, 4, 8 or 16 (default 8). */
  bitDepth?: number
  /** 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA (default 2). */
  colourType?: number
  /** Adam7 interlacing. */
  interlaced?: boolean
  /** Chunks placed between IHDR and IDAT (e.g. PLTE, tEXt, private chunks). */
  before?: Buffer[]
  /** Chunks placed between IDAT and IEND. */
  after?: Buffer[]
  /** Bytes appended after IEND. */
  trailing?: Buffer
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const

/** Bytes of the filtered scanlines (filter byte + row) of a PNG of this shape, Adam7 passes included. */
export function pngRawLength ({ width, height, bitDepth = 8, colourType = 2, interlaced = false }: RawPngOptions): number {
  const bitsPerPixel = (CHANNELS[colourType] as number) * bitDepth
  const rows = (w: number, h: number): number => w === 0 || h === 0 ? 0 : h * (1 + Math.ceil(w * bitsPerPixel / 8))
  if (!interlaced) return rows(width, height)
  let total = 0
  for (const [x0, y0, dx, dy] of ADAM7) total += rows(Math.ceil(Math.max(0, width - x0) / dx), Math.ceil(Math.max(0, height - y0) / dy))
  return total
}

/**
 * A valid PNG of any shape, all pixels zero (black, or transparent). Every scanline is filter 0 with
 * zero bytes, so the image data is `pngRawLength` zeros, deflated as a stream: a 7000×7000 16-bit RGBA
 * or a 1×50,000,000 PNG is made in a second or two and is a few hundred KB.
 */
export async function rawPng (options: RawPngOptions): Promise<Buffer> {
  const { width, height, bitDepth = 8, colourType = 2, interlaced = false } = options
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = bitDepth
  ihdr[9] = colourType
  ihdr[12] = interlaced ? 1 : 0
  const before = options.before ?? (colourType === 3 ? [pngChunk('PLTE', Buffer.from([40, 120, 60]))] : [])
  const idat = await deflateZeros(pngRawLength(options))
  const idats: Buffer[] = []
  for (let at = 0; at < idat.length; at += 1 << 20) idats.push(pngChunk('IDAT', idat.subarray(at, at + (1 << 20))))
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), ...before, ...idats, ...(options.after ?? []), pngChunk('IEND'), options.trailing ?? Buffer.alloc(0)])
}

async function deflateZeros (length: number): Promise<Buffer> {
  const deflate = createDeflate({ level: 9 })
  const out: Buffer[] = []
  deflate.on('data', (chunk: Buffer) => out.push(chunk))
  const done = once(deflate, 'end')
  const zeros = Buffer.alloc(1 << 22)
  for (let left = length; left > 0; left -= zeros.length) {
    if (!deflate.write(zeros.subarray(0, Math.min(left, zeros.length)))) await once(deflate, 'drain')
  }
  deflate.end()
  await done
  return Buffer.concat(out)
}

/** A JPEG marker segment: ff, marker, 2-byte length, data. */
export function jpegSegment (marker: number, data: Buffer): Buffer {
  const head = Buffer.from([0xff, marker, 0, 0])
  head.writeUInt16BE(data.length + 2, 2)
  return Buffer.concat([head, data])
}

/** `file` with `insert` placed just before its end-of-image marker (after the last scan). */
export function beforeJpegEnd (file: Buffer, insert: Buffer): Buffer {
  const eoi = file.length - 2
  if (file[eoi] !== 0xff || file[eoi + 1] !== 0xd9) throw new Error('no EOI at the end')
  return Buffer.concat([file.subarray(0, eoi), insert, file.subarray(eoi)])
}

/** The EXIF APP1 segment of a JPEG (the one jpegWithGps writes, GPS included). */
export function exifSegment (file: Buffer): Buffer {
  const at = file.indexOf(Buffer.from('Exif\0\0')) - 4
  if (at < 0 || file[at + 1] !== 0xe1) throw new Error('no EXIF segment')
  return file.subarray(at, at + 2 + file.readUInt16BE(at + 2))
}

/** A RIFF chunk: fourcc, little-endian size, data, a pad byte when odd. */
export function riffChunk (type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.write(type, 0, 'latin1')
  head.writeUInt32LE(data.length, 4)
  return Buffer.concat([head, data, data.length % 2 === 1 ? Buffer.alloc(1) : Buffer.alloc(0)])
}

/** A WebP from `chunks` (after the RIFF/WEBP header), the RIFF size covering them. */
export function webpFrom (chunks: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from('WEBP'), ...chunks])
  const head = Buffer.alloc(8)
  head.write('RIFF', 0, 'latin1')
  head.writeUInt32LE(body.length, 4)
  return Buffer.concat([head, body])
}

/** The chunks of a simple (VP8 or VP8L) WebP, header removed. */
export function webpChunks (file: Buffer): Buffer {
  return file.subarray(12, file.readUInt32LE(4) + 8)
}

/** A VP8X header chunk: `flags`, canvas width × height. */
export function vp8x (width: number, height: number, flags = 0): Buffer {
  const data = Buffer.alloc(10)
  data[0] = flags
  data.writeUIntLE(width - 1, 4, 3)
  data.writeUIntLE(height - 1, 7, 3)
  return riffChunk('VP8X', data)
}

/** A GIF extension block: 0x21, label, `data` in sub-blocks of at most 255 bytes, terminator. */
export function gifExtension (label: number, data: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from([0x21, label])]
  for (let at = 0; at < data.length; at += 255) {
    const piece = data.subarray(at, at + 255)
    parts.push(Buffer.from([piece.length]), piece)
  }
  parts.push(Buffer.from([0]))
  return Buffer.concat(parts)
}

/** `file` (a GIF) with `blocks` inserted after its logical screen and global colour table. */
export function gifWithBlocks (file: Buffer, blocks: Buffer[]): Buffer {
  const packed = file[10] as number
  const at = 13 + ((packed & 0x80) !== 0 ? 3 * 2 ** ((packed & 0x07) + 1) : 0)
  return Buffer.concat([file.subarray(0, at), ...blocks, file.subarray(at)])
}

/** A GIF of a logical screen, two-colour table, `blocks` (extensions, image descriptors) and the trailer. */
export function gifRaw (width: number, height: number, blocks: Buffer[] = []): Buffer {
  const head = Buffer.alloc(13)
  head.write('GIF89a', 0, 'latin1')
  head.writeUInt16LE(width, 6)
  head.writeUInt16LE(height, 8)
  head[10] = 0x80 // global colour table of 2 colours
  return Buffer.concat([head, Buffer.from([0, 0, 0, 255, 255, 255]), ...blocks, Buffer.from([0x3b])])
}

/** An image descriptor at (left, top) of width × height with a token of LZW data (not decodable as a whole). */
export function gifFrame (left: number, top: number, width: number, height: number): Buffer {
  const d = Buffer.alloc(10)
  d[0] = 0x2c
  d.writeUInt16LE(left, 1)
  d.writeUInt16LE(top, 3)
  d.writeUInt16LE(width, 5)
  d.writeUInt16LE(height, 7)
  return Buffer.concat([d, Buffer.from([2, 2, 0x4c, 0x01, 0])]) // min code size 2, one sub-block, terminator
}
