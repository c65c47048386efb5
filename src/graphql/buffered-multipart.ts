// A multipart body of a declared length, read whole into one pooled buffer and split there
// (@remix-run/multipart-parser: Buffer.indexOf for the boundaries, each part a view of the buffer): no stream,
// parser state machine or copy per part, which busboy's streaming costs every upload (~130 µs of a ~950 µs
// identification, bench/cpu.ts). Bodies that declare no length or more than the smallest file limit, and an upload
// policy's mutation (seen in the first part, `operations`), still stream through busboy (./upload.ts). The body's
// buffer goes back to the pool once the request's files are released (Upload.release) and the parse is over,
// whichever comes last.
import type { FastifyRequest } from 'fastify'
import { ContentType } from '@remix-run/headers/content-type'
import { MaxHeaderSizeExceededError, MaxPartsExceededError, MultipartParseError, parseMultipart, type MultipartPart } from '@remix-run/multipart-parser'
import { ContentDisposition } from '@remix-run/headers/content-disposition'
import { BadRequestError } from '../errors.ts'
import { receiveToDisk } from './disk-upload.ts'
import type { UploadBuffers } from './upload-buffers.ts'
import { Upload, type Operations, type ReceivedPart, type UploadLimits } from './upload-file.ts'

/** RFC 2046 §5.1.1: 1 to 70 characters. */
const MAX_BOUNDARY_LENGTH = 70
/** One part's headers (busboy allows more, but a GraphQL multipart part has two short ones). */
const MAX_PART_HEADER_BYTES = 8 * 1024

export interface BufferedBody {
  /** The parts, in order; throws on a malformed body (errors that ./upload.ts translates). */
  parts: (limits: UploadLimits) => Iterable<ReceivedPart>
  /** The parse is over: the buffer goes back once no file of it is held. Idempotent. */
  done: () => void
}

/**
 * Reads the request's whole body (it declared `length` bytes) into a buffer from `buffers`, unless its `operations`
 * (its first part) say otherwise: when `buffer(operations)` is false (an upload policy that admits its request, or
 * sends its files to disk, before they arrive), the bytes read so far are put back in the stream and null is returned:
 * the caller streams it through busboy. Rejects with the stream's error (the progress watch fails a stalled or too
 * slow upload through it) or, when the client goes away first, an 'aborted' error (./upload.ts: 499).
 */
export async function readBufferedBody (
  request: FastifyRequest, length: number, buffers: UploadBuffers, buffer: (operations: Operations) => boolean = () => true
): Promise<BufferedBody | null> {
  const boundary = boundaryOf(request.headers['content-type'])
  const raw = request.raw
  const taken = buffers.take(Math.max(length, 1))
  let received = 0
  let decided = false
  let lookedAt = 0
  const handedBack = await new Promise<boolean>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      // Node's HTTP parser never delivers more than the declared length; checked anyway before writing.
      if (received + chunk.length > length) { finish(new BadRequestError('The body is longer than its Content-Length.')); return }
      chunk.copy(taken, received)
      received += chunk.length
      // Looked for again only once what arrived has doubled: a first part dripped in tiny pieces costs linear work,
      // not a scan of everything so far for each piece.
      if (decided || received < 2 * lookedAt) return
      lookedAt = received
      const operations = firstPartJson(taken.subarray(0, received), boundary)
      if (operations === INCOMPLETE) return
      decided = true
      if (operations === UNREADABLE || buffer(operations)) return
      // Back into the stream, in a copy (the pooled buffer goes back now), for busboy to read from the start.
      raw.pause()
      const head = Buffer.from(taken.subarray(0, received))
      finish(null, true)
      raw.unshift(head)
    }
    const onEnd = (): void => { finish(received === length ? null : aborted()) }
    const onClose = (): void => { if (!raw.readableEnded) finish(aborted()) }
    const finish = (err: Error | null, handBack = false): void => {
      raw.off('data', onData)
      raw.off('end', onEnd)
      raw.off('error', finish)
      raw.off('close', onClose)
      if (err === null && !handBack) { resolve(false); return }
      buffers.give(taken) // nothing else holds it yet
      if (err === null) resolve(true)
      else reject(err)
    }
    raw.on('data', onData)
    raw.once('end', onEnd)
    raw.once('error', finish)
    raw.once('close', onClose)
  })
  if (handedBack) return null

  const body = taken.subarray(0, length)
  // One hold for the parse, one per file handed out: the buffer goes back when the last is let go.
  let holds = 1
  const letGo = (): void => { if (--holds === 0) buffers.give(taken) }
  let parsing = true
  return {
    parts: (limits) => split(body, boundary, limits, () => { holds++; return letGo }),
    done: () => { if (parsing) { parsing = false; letGo() } }
  }
}

function * split (body: Buffer, boundary: string, limits: UploadLimits, hold: () => () => void): Generator<ReceivedPart> {
  if (body.length === 0) return // no parts, as busboy reads it
  const start = firstDelimiter(body, boundary)
  if (start < 0) throw new BadRequestError('Malformed multipart request: Unexpected end of multipart data (no boundary in the body).')
  let parts
  try {
    parts = parseMultipart(start > 0 ? body.subarray(start) : body, {
      boundary,
      maxHeaderSize: MAX_PART_HEADER_BYTES,
      // Sizes are checked per part below (a field's limit is not a file's); the body is bounded already.
      maxFileSize: body.length,
      maxTotalSize: body.length,
      maxParts: limits.maxFiles + 3
    })
    for (const part of parts) {
      const bytes = contentOf(part.content)
      const { name, isFile } = describePart(part, body, boundary, bytes)
      if (name === undefined) continue // no field name: skipped, as busboy does
      if (!isFile) {
        const valueTruncated = bytes.length > limits.maxFieldBytes
        yield { type: 'field', fieldname: name, value: valueTruncated ? '' : bytes.toString('utf8'), valueTruncated }
        continue
      }
      yield {
        type: 'file',
        fieldname: name,
        receive: async (files, stored) => {
          if (bytes.length > files.maxFileBytes) throw tooLarge()
          if (files.sink === 'memory') return new Upload(bytes, hold())
          const file = await receiveToDisk(once(bytes), files.sink.dir, files.maxFileBytes, tooLarge(), created => { stored.push(created) })
          return new Upload(Buffer.alloc(0), () => { file.discard() }, file)
        }
      }
    }
  } catch (err) {
    throw translate(err)
  }
}

/**
 * The part's field name and whether it is a file (a `filename`, or sent as application/octet-stream, as busboy
 * decides). Its headers are read as UTF-8 (RFC 7578); a client that sent another charset (an old client's file
 * name) has them read as Latin-1 instead, as busboy does, rather than refused.
 */
function describePart (
  part: MultipartPart, body: Buffer, boundary: string, bytes: Buffer
): { name: string | undefined, isFile: boolean } {
  try {
    return { name: part.name, isFile: part.isFile }
  } catch {} // not UTF-8
  // The header block: from after its delimiter line to the \r\n\r\n right before the content (found by the content's
  // place in the body; an empty part has none, and is refused).
  const end = bytes.byteOffset - body.byteOffset - 4
  const delimiter = `--${boundary}\r\n`
  const at = bytes.length === 0 || bytes.buffer !== body.buffer ? -1 : body.lastIndexOf(delimiter, end)
  if (at < 0) throw new BadRequestError('Malformed multipart request: a part header is not valid UTF-8.')
  const headers = new Map<string, string>()
  for (const line of body.toString('latin1', at + delimiter.length, end).split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  const disposition = ContentDisposition.from(headers.get('content-disposition') ?? null)
  const type = ContentType.from(headers.get('content-type') ?? null)
  const hasFilename = disposition.filename !== undefined || disposition.filenameSplat !== undefined
  return { name: disposition.name, isFile: hasFilename || type.mediaType === 'application/octet-stream' }
}

const INCOMPLETE = Symbol('incomplete')
const UNREADABLE = Symbol('unreadable')
/** The most the first part (`operations` and its header) takes before its end must have arrived. */
const MAX_FIRST_PART_BYTES = 64 * 1024 + MAX_PART_HEADER_BYTES

/**
 * The first part's JSON (`operations`, when the request is well formed) once it has arrived whole; INCOMPLETE while
 * it has not; UNREADABLE when it cannot be read (the parse answers what is wrong, the body read whole).
 */
function firstPartJson (head: Buffer, boundary: string): Operations | typeof INCOMPLETE | typeof UNREADABLE {
  const delimiter = `--${boundary}\r\n`
  const start = head.indexOf(delimiter)
  const headerEnd = start < 0 ? -1 : head.indexOf('\r\n\r\n', start + delimiter.length - 2)
  const end = headerEnd < 0 ? -1 : head.indexOf(`\r\n--${boundary}`, headerEnd + 4)
  if (end < 0) return head.length > MAX_FIRST_PART_BYTES ? UNREADABLE : INCOMPLETE
  try {
    const value: unknown = JSON.parse(head.toString('utf8', headerEnd + 4, end))
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Operations : UNREADABLE
  } catch {
    return UNREADABLE
  }
}

/** Where the first delimiter starts: at the very beginning, or after a preamble (RFC 2046 allows one). */
function firstDelimiter (body: Buffer, boundary: string): number {
  if (body.length >= boundary.length + 2 && body.toString('latin1', 0, boundary.length + 2) === `--${boundary}`) return 0
  const after = body.indexOf(`\r\n--${boundary}`)
  return after < 0 ? -1 : after + 2
}

/** The part's bytes: a view of the body (one chunk when parsed from one buffer). */
function contentOf (content: Uint8Array[]): Buffer {
  const [only] = content
  if (only === undefined) return Buffer.alloc(0)
  if (content.length === 1) return Buffer.from(only.buffer, only.byteOffset, only.byteLength)
  return Buffer.concat(content)
}

async function * once (bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes
}

function boundaryOf (contentType: string | undefined): string {
  const boundary = ContentType.from(contentType ?? null).boundary
  if (boundary === undefined || boundary.length === 0 || boundary.length > MAX_BOUNDARY_LENGTH) {
    throw new BadRequestError('Malformed multipart request: Boundary not found in the Content-Type (1 to 70 characters).')
  }
  return boundary
}

function tooLarge (): Error {
  return Object.assign(new Error('file too large'), { code: 'FST_REQ_FILE_TOO_LARGE' })
}

function aborted (): Error {
  return Object.assign(new Error('aborted'), { code: 'ECONNRESET' })
}

/** The parser's errors, in the words busboy's would have been answered with (./upload.ts). */
function translate (err: unknown): unknown {
  if (err instanceof MaxPartsExceededError) return Object.assign(new Error('too many parts'), { code: 'FST_PARTS_LIMIT' })
  if (err instanceof MaxHeaderSizeExceededError) return new BadRequestError(`Malformed multipart request: a part header is larger than ${MAX_PART_HEADER_BYTES} bytes.`)
  if (err instanceof MultipartParseError) return new BadRequestError('Malformed multipart request: Unexpected end of multipart data (or a missing boundary).')
  return err
}
