// What an upload is once received (the file's bytes, or a file on disk), the limits it is read under, and a
// request's parts as ./upload.ts checks them, whichever parser read them (busboy streaming, or
// ./buffered-multipart.ts).
import type { StoredFile } from './disk-upload.ts'
import type { UploadBuffers } from './upload-buffers.ts'

/**
 * An uploaded file, fully received. Only its bytes: the client's file name and content type are
 * not kept (the type is sniffed from the bytes, and a name is not needed).
 */
export class Upload {
  /** The bytes (empty when the file went to disk: `file`). */
  readonly buffer: Buffer
  /** A file received to disk (an upload policy with a folder); null when in memory. */
  readonly file: StoredFile | null
  #release: (() => void) | null

  constructor (buffer: Buffer, release: (() => void) | null = null, file: StoredFile | null = null) {
    this.buffer = buffer
    this.#release = release
    this.file = file
  }

  /** Once nothing reads `buffer` any more (the identification is over): its memory is reused. Idempotent. */
  release (): void {
    const release = this.#release
    this.#release = null
    release?.()
  }
}

/** The JSON of the `operations` field. */
export type Operations = Record<string, unknown>

export interface UploadLimits {
  /** Largest file accepted, in bytes (MAX_UPLOAD_BYTES). */
  maxFileBytes: number
  /** Most files per request. */
  maxFiles: number
  /** Largest `operations` or `map` field, in bytes. */
  maxFieldBytes: number
  /** Refuse the upload when its body makes no progress for this long (UPLOAD_IDLE_TIMEOUT_MS). */
  idleTimeoutMs: number
  /**
   * Refuse the upload when, from `idleTimeoutMs` after its start on, its body has averaged fewer bytes
   * per second than this (UPLOAD_MIN_BYTES_PER_SECOND; 0: no minimum): a drip is progress, but not enough.
   */
  minBytesPerSecond: number
  /** Where file buffers come from and go back to (none: each allocated, and collected). */
  buffers?: UploadBuffers
  /**
   * A body that declared a length of at most this is read whole into one of `buffers` before it is parsed (0: every
   * body is parsed as it streams in). At most the smallest file limit: no file of such a body can be over its own.
   */
  bufferBodiesUpTo: number
  /**
   * Whether such a body is read whole, once its `operations` are read (none: always). False for a mutation whose
   * upload policy must see its request before the files arrive (admission, files to disk): it streams.
   */
  bufferable?: (operations: Operations) => boolean
  /**
   * Once `operations` is read: the files' limits and sink for its mutation (its upload policy); not given: these
   * limits, in memory. May throw (an AppError: a refusal before any file is read).
   */
  select?: (operations: Operations) => Promise<FileLimits>
}

/** What one request's files may be, and where they go. */
export interface FileLimits {
  maxFiles: number
  maxFileBytes: number
  /** 'memory': one buffer each; a folder: each streamed to a new file in it. */
  sink: 'memory' | { dir: string }
}

/**
 * One part of the request as the checks below see it, whichever parser read it: a field's value (a string, or
 * already parsed when sent as application/json) or a file that `receive` reads under its mutation's limits.
 */
export type ReceivedPart =
  | { type: 'field', fieldname: string, value: unknown, valueTruncated: boolean }
  | { type: 'file', fieldname: string, receive: (files: FileLimits, stored: StoredFile[]) => Promise<Upload> }
