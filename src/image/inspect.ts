// What is this upload, really? The type is sniffed from the bytes (file-type), never taken from the
// client's file name or content type; dimensions and orientation come from the header (image-size);
// a walk of every segment of the container refuses truncated, animated and frameless files, and says
// whether the file holds pixel data only and what decoding it will cost (see structure.ts).
// Nothing is decoded here: corrupt pixel data is caught when the pipeline has to decode.
import { createHash } from 'node:crypto'
import { fileTypeFromBuffer } from 'file-type'
import { imageSize } from 'image-size'
import { ACCEPTED_MIME_TYPES, type ImageMimeType } from './mime-types.ts'
import { readStructure, type DecodeHeader } from './structure.ts'
import { BadUserInputError } from '../errors.ts'

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
  /**
   * Every segment/chunk is an allow-listed pixel-data kind, the encoding is a plain one (8-bit greyscale
   * or YCbCr JPEG, one-frame GIF, simple WebP) and nothing follows the end marker: only then may the
   * file be sent unchanged.
   */
  pixelDataOnly: boolean
  /** What decoding will produce (bit depth, channels, interlacing, JPEG scans), from the header. */
  decode: DecodeHeader
}

export async function inspectImage (buffer: Buffer): Promise<InspectedImage> {
  if (buffer.length === 0) throw refuse('The uploaded file is empty.')

  const sniffed = await fileTypeFromBuffer(buffer)
  const mimeType = sniffed?.mime
  if (!isAccepted(mimeType)) {
    throw refuse(`Unsupported file type ${mimeType ? `(${mimeType})` : '(not a recognised image)'}.`)
  }

  let size: ReturnType<typeof imageSize>
  try {
    size = imageSize(buffer)
  } catch {
    throw refuse('The image is corrupt: its header cannot be read.')
  }
  if (!size.width || !size.height) throw refuse('The image is corrupt: it has no dimensions.')
  const structure = readStructure(buffer, mimeType)
  if (!structure.complete) throw refuse('The image is truncated or corrupt.')
  if (structure.animated) throw refuse('Animated images are not supported.')
  if (structure.frames === 0) throw refuse('The GIF holds no image.', 'GIF_NO_FRAMES')
  if (structure.decode === undefined) throw refuse('The image is corrupt: its header cannot be read.')

  return {
    sha256: createHash('sha256').update(buffer).digest('hex'),
    mimeType,
    bytes: buffer.length,
    width: size.width,
    height: size.height,
    orientation: size.orientation,
    hasMetadata: structure.hasMetadata,
    pixelDataOnly: structure.pixelDataOnly,
    decode: structure.decode
  }
}

function refuse (message: string, reason?: string) {
  return new BadUserInputError(`${message} Send a ${ACCEPTED} image.`, { acceptedTypes: [...ACCEPTED_MIME_TYPES], ...(reason ? { reason } : {}) })
}

function isAccepted (mime: string | undefined): mime is ImageMimeType {
  return (ACCEPTED_MIME_TYPES as readonly string[]).includes(mime ?? '')
}

/** Does the file end the way its format says it must? Catches uploads cut short. */
export function isComplete (buf: Buffer, mime: ImageMimeType): boolean {
  return readStructure(buf, mime).complete
}
