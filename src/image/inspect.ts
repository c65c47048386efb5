// What is this upload, really? The type is sniffed from the bytes (file-type), never taken from the
// client's file name or content type; dimensions and frame count come from the header (sharp reads
// it without decoding pixels); a cheap structural check refuses truncated files.
import { createHash } from 'node:crypto'
import { fileTypeFromBuffer } from 'file-type'
import sharp, { type Metadata } from 'sharp'
import { badUserInput } from '../errors.ts'

export const ACCEPTED_MIME_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif'] as const
export type ImageMimeType = typeof ACCEPTED_MIME_TYPES[number]

const ACCEPTED = 'JPEG, PNG, WebP or non-animated GIF'

export interface InspectedImage {
  sha256: string
  mimeType: ImageMimeType
  bytes: number
  width: number
  height: number
  /** EXIF orientation (1–8) when present. */
  orientation: number | undefined
  /** True when the file carries EXIF, XMP, IPTC or ICC data. */
  hasMetadata: boolean
}

export async function inspectImage (buffer: Buffer): Promise<InspectedImage> {
  if (buffer.length === 0) throw refuse('The uploaded file is empty.')

  const sniffed = await fileTypeFromBuffer(buffer)
  const mimeType = sniffed?.mime
  if (!isAccepted(mimeType)) {
    throw refuse(`Unsupported file type ${mimeType ? `(${mimeType})` : '(not a recognised image)'}.`)
  }
  if (!isComplete(buffer, mimeType)) throw refuse('The image is truncated or corrupt.')

  let meta: Metadata
  try {
    // Header only, so no pixel limit here: the pipeline refuses oversized images by their claimed size.
    meta = await sharp(buffer, { pages: -1, limitInputPixels: false }).metadata()
  } catch {
    throw refuse('The image is corrupt: its header cannot be read.')
  }
  if (!meta.width || !meta.height) throw refuse('The image is corrupt: it has no dimensions.')
  if ((meta.pages ?? 1) > 1) throw refuse('Animated images are not supported.')

  return {
    sha256: createHash('sha256').update(buffer).digest('hex'),
    mimeType,
    bytes: buffer.length,
    width: meta.width,
    // With pages: -1, sharp reports the height of all frames stacked; there is one frame here.
    height: meta.pageHeight ?? meta.height,
    orientation: meta.orientation,
    hasMetadata: Boolean(meta.exif ?? meta.xmp ?? meta.iptc ?? meta.icc ?? meta.comments?.length)
  }
}

function refuse (reason: string) {
  return badUserInput(`${reason} Send a ${ACCEPTED} image.`, { acceptedTypes: [...ACCEPTED_MIME_TYPES] })
}

function isAccepted (mime: string | undefined): mime is ImageMimeType {
  return (ACCEPTED_MIME_TYPES as readonly string[]).includes(mime ?? '')
}

/** Does the file end the way its format says it must? Catches uploads cut short. */
export function isComplete (buf: Buffer, mime: ImageMimeType): boolean {
  switch (mime) {
    case 'image/jpeg': return jpegHasEndAfterScan(buf)
    case 'image/png': {
      // The IEND chunk type, then its 4-byte CRC.
      const iend = buf.lastIndexOf('IEND', undefined, 'latin1')
      return iend > 8 && iend + 8 <= buf.length
    }
    case 'image/gif': return lastNonZeroByte(buf) === 0x3b
    case 'image/webp': return buf.length >= 12 && buf.readUInt32LE(4) + 8 <= buf.length
  }
}

// Walk the JPEG segments to the first start-of-scan, then look for end-of-image after it.
// (An EXIF thumbnail carries its own end marker inside APP1, which the walk skips.)
function jpegHasEndAfterScan (buf: Buffer): boolean {
  let at = 2
  while (at + 4 <= buf.length) {
    if (buf[at] !== 0xff) return false
    const marker = buf[at + 1] as number
    if (marker === 0xff) { at++; continue } // fill byte
    if (marker === 0xda) return buf.indexOf(Buffer.from([0xff, 0xd9]), at + 2) !== -1
    at += 2 + buf.readUInt16BE(at + 2)
  }
  return false
}

function lastNonZeroByte (buf: Buffer): number | undefined {
  let i = buf.length - 1
  while (i >= 0 && buf[i] === 0) i--
  return buf[i]
}
