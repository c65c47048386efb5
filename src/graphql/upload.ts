// The GraphQL multipart request spec (https://github.com/jaydenseric/graphql-multipart-request-spec):
// fields `operations`, then `map`, then the files the map names; an identification's body read whole and split
// (./buffered-multipart.ts), any other streamed through @fastify/multipart (busboy).
// Every file is buffered in memory under a hard cap (never a shared temp path), unless the mutation's upload
// policy (chosen once `operations` is read: its one root field) streams its files to a folder of its own
// (./disk-upload.ts: never whole in memory, removed on any error). Every way a request can be malformed is
// answered 400 BAD_REQUEST (413 PAYLOAD_TOO_LARGE for an oversize file).
import type { FastifyRequest } from 'fastify'
import type { Multipart } from '@fastify/multipart'
import { AppError, BadRequestError, ClientClosedRequestError, PayloadTooLargeError, UploadTimeoutError, UploadTooSlowError } from '../errors.ts'
import { receiveToDisk, type StoredFile } from './disk-upload.ts'
import type { UploadBuffers } from './upload-buffers.ts'
import { readBufferedBody, type BufferedBody } from './buffered-multipart.ts'
import { Upload, type FileLimits, type Operations, type ReceivedPart, type UploadLimits } from './upload-file.ts'

export type { StoredFile }
export { Upload, type FileLimits, type Operations, type ReceivedPart, type UploadLimits }

/** Multipart framing around the file and the two fields: boundaries, part headers. */
const FRAMING_BYTES = 16 * 1024
/** The least an upload is counted for, whatever it declares: what its connection and parser may buffer. */
export const MIN_UPLOAD_CHARGE = 64 * 1024

/** The most a request of these limits can bring: its largest file and fields, with their framing. */
function largestBody (limits: Pick<UploadLimits, 'maxFileBytes' | 'maxFieldBytes'>): number {
  return limits.maxFileBytes + 2 * limits.maxFieldBytes + FRAMING_BYTES
}

/**
 * The bytes an upload reserves before its body is read (src/limits/receiving.ts): its declared
 * content-length, bounded by the most a request can bring (a file of `maxFileBytes` and its fields);
 * without a content-length (chunked), that most.
 */
export function uploadCharge (contentLength: string | undefined, limits: Pick<UploadLimits, 'maxFileBytes' | 'maxFieldBytes'>): number {
  const most = largestBody(limits)
  const declared = Number(contentLength)
  const bytes = contentLength !== undefined && Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, most) : most
  return Math.max(bytes, MIN_UPLOAD_CHARGE)
}

const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype'])

/**
 * Reads a multipart GraphQL request and returns the operation with an `Upload` at each mapped path.
 * A body that declared a length of at most `limits.bufferBodiesUpTo` is read whole into one pooled buffer and
 * split there (./buffered-multipart.ts: no stream per part, the file is a view of that buffer); any other is
 * parsed as it streams in (@fastify/multipart, busboy). The checks and errors are the same either way.
 * Throws `AppError`s; the caller must drain the request when it throws (see `discardRest`).
 */
export async function readMultipartOperations (
  request: FastifyRequest, limits: UploadLimits, stored: StoredFile[] = []
): Promise<Operations> {
  let stopWatching = noWatch
  let files: FileLimits = { maxFiles: limits.maxFiles, maxFileBytes: limits.maxFileBytes, sink: 'memory' }
  let operations: Operations | undefined
  let fileToPaths: Map<string, string[]> | undefined
  const received = new Set<string>()
  let buffered: BufferedBody | undefined
  try {
    const length = declaredLength(request)
    let parts: Iterable<ReceivedPart> | AsyncIterable<ReceivedPart>
    if (length !== null && length <= limits.bufferBodiesUpTo && limits.buffers !== undefined) {
      stopWatching = watchProgress(request, limits)
      buffered = await readBufferedBody(request, length, limits.buffers, limits.bufferable) ?? undefined
    }
    if (buffered !== undefined) {
      parts = buffered.parts(limits)
    } else {
      const watching = stopWatching !== noWatch
      parts = streamedParts(request, limits)
      if (!watching) stopWatching = watchProgress(request, limits)
    }
    for await (const part of parts) {
      if (operations === undefined) {
        if (part.type !== 'field' || part.fieldname !== 'operations') {
          throw new BadRequestError(`Misordered multipart fields: expected \`operations\` first, got ${describe(part)}.`)
        }
        operations = parseOperations(fieldJson(part, limits))
        if (limits.select !== undefined) files = await limits.select(operations)
      } else if (fileToPaths === undefined) {
        if (part.type !== 'field' || part.fieldname !== 'map') {
          throw new BadRequestError(`Misordered multipart fields: expected \`map\` after \`operations\`, got ${describe(part)}.`)
        }
        fileToPaths = parseMap(fieldJson(part, limits), operations, files.maxFiles)
      } else {
        if (part.type !== 'file') {
          throw new BadRequestError(`Unexpected field ${quote(part.fieldname)} after \`map\`: only files may follow it.`)
        }
        const paths = fileToPaths.get(part.fieldname)
        if (paths === undefined || received.has(part.fieldname)) {
          throw new BadRequestError(`File field ${quote(part.fieldname)} is not in \`map\` (or was sent twice).`)
        }
        received.add(part.fieldname)
        const upload = await part.receive(files, stored)
        for (const path of paths) setPath(operations, path, upload)
      }
    }
  } catch (err) {
    for (const file of stored) file.discard() // a refused request leaves no file behind
    throw translateMultipartError(err, { ...limits, ...files })
  } finally {
    stopWatching()
    buffered?.done() // the body's buffer goes back once no file of it is held any more
  }

  try {
    if (operations === undefined) throw new BadRequestError('Missing multipart field `operations` (the GraphQL multipart request spec).')
    if (fileToPaths === undefined) throw new BadRequestError('Missing multipart field `map` (the GraphQL multipart request spec).')
    for (const name of fileToPaths.keys()) {
      if (!received.has(name)) throw new BadRequestError(`File ${quote(name)} named in \`map\` was never sent.`)
    }
  } catch (err) {
    for (const file of stored) file.discard()
    throw err
  }
  return operations
}

function noWatch (): void {}

/** The body's length when the request declared it (not chunked), else null. */
function declaredLength (request: FastifyRequest): number | null {
  const header = request.headers['content-length']
  if (header === undefined || request.headers['transfer-encoding'] !== undefined) return null
  const length = Number(header)
  return Number.isSafeInteger(length) && length >= 0 ? length : null
}

/** The parts as @fastify/multipart (busboy) reads them from the stream (piped at once, before anything flows). */
function streamedParts (request: FastifyRequest, limits: UploadLimits): AsyncGenerator<ReceivedPart> {
  const parts = request.parts({
    // Throw past the limit instead of silently truncating (read at run time; missing from the typings).
    ...{ throwFileSizeLimit: true },
    limits: {
      fileSize: limits.maxFileBytes,
      fieldSize: limits.maxFieldBytes,
      // One more than allowed, so that an extra file or field reaches our own check and gets a clear message.
      files: limits.maxFiles + 1,
      fields: 3,
      parts: limits.maxFiles + 3
    }
  })
  const contentLength = Number(request.headers['content-length']) || 0
  return toReceived(parts, contentLength, limits)
}

async function * toReceived (
  parts: AsyncIterable<Multipart>, contentLength: number, limits: UploadLimits
): AsyncGenerator<ReceivedPart> {
  for await (const part of parts) {
    if (part.type === 'field') {
      yield { type: 'field', fieldname: part.fieldname, value: part.value, valueTruncated: part.valueTruncated }
    } else {
      yield {
        type: 'file',
        fieldname: part.fieldname,
        receive: async (files, stored) => files.sink === 'memory'
          ? await readFile(part, contentLength, files.maxFileBytes, limits.buffers)
          : await receiveFile(part, files.sink.dir, files.maxFileBytes, stored)
      }
    }
  }
}

type FilePart = Extract<Multipart, { type: 'file' }>

/**
 * The file's bytes, copied as they arrive into one buffer sized from the request's content-length
 * (bounded by the limit): no second copy at the end as with toBuffer(), so a 10 MB upload peaks at
 * about 10 MB, not 20. Chunked requests (no content-length) grow the buffer by doubling.
 */
async function readFile (part: FilePart, contentLength: number, maxBytes: number, buffers?: UploadBuffers): Promise<Upload> {
  const file = part.file as FilePart['file'] & { truncated?: boolean }
  // busboy reads ahead: the file may already be over the limit, and reading on would wait for the
  // end of a part a stalled client never sends. Fail as soon as the limit is crossed.
  const tooLarge = Object.assign(new Error('file too large'), { code: 'FST_REQ_FILE_TOO_LARGE' })
  if (file.truncated) throw tooLarge
  file.once('limit', () => file.destroy(tooLarge))

  const first = Math.min(contentLength > 0 ? contentLength : 64 * 1024, maxBytes + 1)
  const taken = buffers?.take(first) ?? Buffer.allocUnsafe(first)
  let buffer = taken
  let length = 0
  for await (const chunk of file as AsyncIterable<Buffer>) {
    // The parser's own limit may be a larger policy's (a pooled buffer may be larger too): this file's is checked here.
    if (length + chunk.length > maxBytes) throw tooLarge
    if (length + chunk.length > buffer.length) {
      const grown = Buffer.allocUnsafe(Math.min(Math.max(buffer.length * 2, length + chunk.length), maxBytes + 1))
      buffer.copy(grown, 0, 0, length)
      buffer = grown
    }
    if (length + chunk.length > buffer.length) throw tooLarge // past the limit: busboy's own check follows
    chunk.copy(buffer, length)
    length += chunk.length
  }
  if (file.truncated) throw tooLarge
  // The pooled buffer goes back when the identification is over; a grown one (no content-length) is collected.
  const pooled = buffer === taken && buffers !== undefined
  return new Upload(buffer.subarray(0, length), pooled ? () => { buffers.give(taken) } : null)
}

/** A file streamed to a new file in `dir` (the policy's folder); recorded in `stored` at once, so that a failure removes it. */
async function receiveFile (part: FilePart, dir: string, maxBytes: number, stored: StoredFile[]): Promise<Upload> {
  const file = part.file as FilePart['file'] & { truncated?: boolean }
  const tooLarge = Object.assign(new Error('file too large'), { code: 'FST_REQ_FILE_TOO_LARGE' })
  if (file.truncated) throw tooLarge
  file.once('limit', () => file.destroy(tooLarge))
  const received = await receiveToDisk(file as AsyncIterable<Buffer>, dir, maxBytes, tooLarge, created => { stored.push(created) })
  if (file.truncated) throw tooLarge
  return new Upload(Buffer.alloc(0), () => { received.discard() }, received)
}

function describe (part: ReceivedPart): string {
  return `${part.type} ${quote(part.fieldname)}`
}

/** A client-chosen name, echoed in an error: at most 64 characters, control characters escaped. */
function quote (name: string): string {
  const shown = JSON.stringify(name.length > 64 ? name.slice(0, 64) : name).slice(1, -1)
  return `\`${shown}\`${name.length > 64 ? ` (${name.length} characters, cut)` : ''}`
}

/**
 * Fails the multipart parse (through the request's 'error', which @fastify/multipart turns into a
 * rejected part) when no body bytes arrive for `idleTimeoutMs`, or when, once `idleTimeoutMs` has
 * passed, the body has averaged fewer than `minBytesPerSecond`: a stalled or dripping client must not
 * hold its bytes' budget (and its connection) for the whole request timeout. Returns the function
 * that stops watching.
 */
function watchProgress (request: FastifyRequest, { idleTimeoutMs, minBytesPerSecond }: UploadLimits): () => void {
  const raw = request.raw
  if (raw.readableEnded) return () => {}
  const started = performance.now()
  let received = 0
  let lastProgress = started
  const fail = (err: Error): void => { stop(); raw.emit('error', err) }
  const stalled = (): Error => Object.assign(new Error('upload stalled'), { code: 'UPLOAD_STALLED' })
  const idle = setTimeout(() => { fail(stalled()) }, idleTimeoutMs)
  // Checked when the average would have fallen below the minimum had nothing arrived since the last check.
  let rateCheck: NodeJS.Timeout | undefined
  const checkRate = (): void => {
    const now = performance.now()
    const elapsed = now - started
    const due = received * 1000 / minBytesPerSecond // when the average reaches the minimum with what came so far
    if (due < elapsed - 1) {
      // Nothing for the idle timeout is the plainer reason (both timers may be due together).
      fail(now - lastProgress >= idleTimeoutMs - 1 ? stalled() : new UploadTooSlowError(minBytesPerSecond, received, elapsed))
      return
    }
    rateCheck = setTimeout(checkRate, Math.max(100, due - elapsed))
  }
  if (minBytesPerSecond > 0) rateCheck = setTimeout(checkRate, idleTimeoutMs)
  const progress = (chunk: Buffer): void => {
    received += chunk.length
    lastProgress = performance.now()
    idle.refresh()
  }
  raw.on('data', progress)
  // Received in full: parsing what arrived is no longer the client's doing (a busy event loop must not fail it).
  raw.once('end', stop)
  function stop (): void {
    clearTimeout(idle)
    clearTimeout(rateCheck)
    raw.off('data', progress)
    raw.off('end', stop)
  }
  return stop
}

function fieldJson (part: Extract<ReceivedPart, { type: 'field' }>, limits: UploadLimits): unknown {
  // An oversize field is not an error in @fastify/multipart: it is cut short and flagged.
  if (part.valueTruncated) {
    throw new BadRequestError(`Multipart field ${quote(part.fieldname)} is larger than ${limits.maxFieldBytes} bytes.`)
  }
  if (typeof part.value !== 'string') return part.value // already parsed (sent as application/json)
  try {
    return JSON.parse(part.value)
  } catch {
    throw new BadRequestError(`Multipart field ${quote(part.fieldname)} is not valid JSON.`)
  }
}

function parseOperations (value: unknown): Operations {
  if (Array.isArray(value)) throw new BadRequestError('Batched operations are not supported: send one operation per request.')
  if (value === null || typeof value !== 'object') throw new BadRequestError('Multipart field `operations` must be a JSON object.')
  return value as Operations
}

function parseMap (value: unknown, operations: Operations, maxFiles: number): Map<string, string[]> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new BadRequestError('Multipart field `map` must be a JSON object of file field names to arrays of paths.')
  }
  const entries = Object.entries(value)
  if (entries.length > maxFiles) throw new BadRequestError(`Too many files in \`map\`: at most ${maxFiles} allowed.`)
  const map = new Map<string, string[]>()
  for (const [name, paths] of entries) {
    if (!Array.isArray(paths) || paths.length === 0 || !paths.every((p): p is string => typeof p === 'string')) {
      throw new BadRequestError(`\`map\` entry ${quote(name)} must be a non-empty array of strings.`)
    }
    for (const path of paths) checkPath(operations, path)
    map.set(name, paths)
  }
  return map
}

/** A mapped path must lead to an existing `null` in `operations` (where the spec puts each file). */
function checkPath (operations: Operations, path: string): void {
  const segments = path.split('.')
  let node: unknown = operations
  for (const segment of segments) {
    if (FORBIDDEN_SEGMENTS.has(segment) || node === null || typeof node !== 'object' || !Object.hasOwn(node, segment)) {
      throw new BadRequestError(`\`map\` path ${quote(path)} does not lead to a value in \`operations\`.`)
    }
    node = (node as Record<string, unknown>)[segment]
  }
  if (node !== null) throw new BadRequestError(`\`map\` path ${quote(path)} must point at a \`null\` placeholder in \`operations\`.`)
}

function setPath (operations: Operations, path: string, upload: Upload): void {
  const segments = path.split('.')
  const last = segments.pop() as string
  let node = operations as Record<string, unknown>
  for (const segment of segments) node = node[segment] as Record<string, unknown>
  node[last] = upload
}

function translateMultipartError (err: unknown, limits: UploadLimits): AppError {
  if (err instanceof AppError) return err
  // A client that goes away mid-upload surfaces as an 'aborted' error without a code.
  const code = (err as { code?: string }).code ?? ((err as Error).message === 'aborted' ? 'ECONNRESET' : undefined)
  switch (code) {
    case 'FST_REQ_FILE_TOO_LARGE':
      return new PayloadTooLargeError(`File is larger than the limit of ${limits.maxFileBytes} bytes.`, limits.maxFileBytes)
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
      return new BadRequestError(`Too many files: at most ${limits.maxFiles} per request.`)
    case 'FST_FIELDS_LIMIT':
      return new BadRequestError('Too many fields: a GraphQL multipart request has only `operations` and `map`.')
    case 'FST_PROTO_VIOLATION':
      return new BadRequestError('Forbidden multipart field name.')
    case 'FST_INVALID_JSON_FIELD_ERROR':
      return new BadRequestError('A multipart field declared as application/json is not valid JSON.')
    case 'UPLOAD_STALLED':
      return new UploadTimeoutError(limits.idleTimeoutMs)
    case 'FST_MP_PREMATURE_CLOSE':
    case 'ECONNRESET':
    case 'ECONNABORTED':
      return new ClientClosedRequestError('The client closed the request before the upload was complete.')
    default:
      // busboy's own parse errors ("Malformed part header", "Unexpected end of form", ...)
      return new BadRequestError(`Malformed multipart request: ${String((err as Error).message).slice(0, 200)}.`)
  }
}
