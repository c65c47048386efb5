// Reads a bulk job's ZIP archive (issue 20) from disk, one entry at a time, with yauzl: never the whole
// archive in memory, never an entry past its declared size. The central directory is listed first and every
// bound is checked before a byte is inflated. Three outcomes per archive:
//  - refused as a whole (BulkArchiveError, BAD_USER_INPUT with a `reason`): not a readable ZIP, multi-disk,
//    strong encryption, more entries or items than allowed, more declared bytes than allowed, entries whose
//    data overlap (Fifield's overlapping zip bomb: many central records pointing into one compressed stream);
//  - an entry that cannot be used is listed with a `problem` (its item FAILED, the job goes on): a name that
//    is unsafe or too long, encryption, a method other than stored or deflate, over MAX_UPLOAD_BYTES, a
//    compression ratio over the cap, empty; and, when read, a size or CRC that differs from the declared
//    one, corrupt data, an archive inside the archive;
//  - skipped, not listed: directories, `__MACOSX/…` and any path segment starting with '.' (.DS_Store, ._x.jpg).
// Whether a listed entry is an accepted image is the image pipeline's call (inspectImage), as for identifyVehicle.
// Names are data, never paths: nothing here writes an entry anywhere.
import { close as closeFd, fstat as fstatFd, open as openFd } from 'node:fs'
import { promisify } from 'node:util'
import { crc32 } from 'node:zlib'
import type { Readable } from 'node:stream'
import { fileTypeFromBuffer } from 'file-type'
import yauzl from 'yauzl'
import { ArchiveEntryRefusedError, ArchiveEntryTooLargeError, BulkArchiveError, type ErrorCode } from '../../errors.ts'
import { isStorableText, storableText } from '../../storable-text.ts'
import { FileReader } from './file-reader.ts'

export interface ArchiveLimits {
  /** Entries listed (photos and failed items; skipped entries excepted): more refuses the archive. */
  maxItems: number
  /** Σ declared size of the entries that will be read: more refuses the archive. */
  maxExpandedBytes: number
  /** One entry's declared (and actual) size: more fails the item with PAYLOAD_TOO_LARGE (MAX_UPLOAD_BYTES). */
  maxEntryBytes: number
  /** Declared size ÷ compressed size: more fails the item (`compression_ratio`). */
  maxCompressionRatio: number
}

/** Why one item failed: the code identifyVehicle would give for such a file, and a stable word. */
export interface EntryProblem {
  code: ErrorCode
  reason: string
}

export interface ArchiveEntry {
  /** The entry's position in the central directory (0-based): stable when the same file is opened again. */
  index: number
  /** Its path in the archive, as text to show and store (storable, at most MAX_ENTRY_NAME_LENGTH characters). */
  name: string
  /** The uncompressed size the archive declares for it. */
  declaredBytes: number
  problem: EntryProblem | null
}

export interface ArchiveListing {
  /** In central-directory order. */
  entries: ArchiveEntry[]
  /**
   * The entry's bytes (exactly its declared size, CRC checked). Rejects with ArchiveEntryRefusedError or
   * ArchiveEntryTooLargeError (the item's code and `reason`) for an entry listed with a problem, a size or CRC
   * that differs from the declared one, corrupt data or a nested archive.
   */
  readEntry: (index: number) => Promise<Buffer>
  /** Stops reads in flight and closes the file; resolves once its descriptor is closed. Idempotent. */
  close: () => Promise<void>
}

export const MAX_ENTRY_NAME_LENGTH = 1024
/** Central records scanned at most, as a multiple of maxItems (directories and skipped files take some). */
export const ENTRY_COUNT_FACTOR = 2
/**
 * Central directory bytes allowed per record scanned, on average: a record is 46 bytes, a name that can be listed at
 * most 3 KiB. yauzl parses every record's extra fields (an object per 4 bytes): this bounds that work before it starts.
 */
export const CENTRAL_BYTES_PER_ENTRY = 4096
/** The end records after the central directory: EOCD with its longest comment, zip64's record and locator. */
const END_RECORDS_BYTES = 22 + 0xffff + 56 + 20

const LOCAL_HEADER_BYTES = 30
const STORED = 0
const DEFLATED = 8

/** What readEntry needs of an entry: numbers only, so that a listing of 20,000 holds no name or extra-field buffer. */
interface Location {
  offset: number
  compressedSize: number
  uncompressedSize: number
  deflated: boolean
  crc32: number
  /** Where the next entry's local header (or the central directory) starts: this entry's data must end before. */
  boundary: number
}

/** The least span of one entry's local header and data, from its central record. */
interface Span {
  start: number
  end: number
  index: number
}

/** readEntry after (or during) close(): not the entry's fault, so no item code. */
export class ArchiveClosedError extends Error {
  constructor () {
    super('The archive was closed.')
    this.name = 'ArchiveClosedError'
  }
}

const openFile = promisify(openFd)
const closeFile = promisify(closeFd)
const fstat = promisify(fstatFd)

export async function openArchive (path: string, limits: ArchiveLimits): Promise<ArchiveListing> {
  let fd: number
  try {
    fd = await openFile(path, 'r')
  } catch (err) {
    throw new BulkArchiveError('The archive cannot be opened.', 'archive_unreadable', { cause: err })
  }
  let zipfile: yauzl.ZipFile
  try {
    zipfile = await fromFd(fd)
  } catch (err) {
    // yauzl took a reference it never gives back on a failed open: the descriptor is ours to close.
    await closeFile(fd).catch(() => {})
    throw refusedArchive(err)
  }
  const archive = new OpenArchive(zipfile, limits)
  try {
    await archive.list()
  } catch (err) {
    await archive.close()
    throw err
  }
  return archive.listing()
}

async function fromFd (fd: number): Promise<yauzl.ZipFile> {
  const { size } = await fstat(fd)
  return await new Promise((resolve, reject) => {
    yauzl.fromRandomAccessReader(new FileReader(fd, size), size,
      { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true, strictFileNames: false },
      (err, zipfile) => { if (err) reject(err); else resolve(zipfile) })
  })
}

class OpenArchive {
  readonly #zipfile: yauzl.ZipFile
  readonly #limits: ArchiveLimits
  /** Where the central directory starts: the last entry's data must end before it. */
  readonly #centralDirectoryOffset: number
  readonly #entries: ArchiveEntry[] = []
  readonly #byIndex = new Map<number, ArchiveEntry>()
  readonly #locations = new Map<number, Location>()
  readonly #spans: Span[] = []
  readonly #reading = new Set<Readable>()
  readonly #inFlight = new Set<Promise<unknown>>()
  #closing: Promise<void> | undefined

  constructor (zipfile: yauzl.ZipFile, limits: ArchiveLimits) {
    this.#zipfile = zipfile
    this.#limits = limits
    // Before the first entry is read, yauzl's cursor is the central directory's offset (typed as boolean by @types/yauzl).
    const cursor: unknown = zipfile.readEntryCursor
    this.#centralDirectoryOffset = typeof cursor === 'number' ? cursor : zipfile.fileSize
    // yauzl emits 'error' at most once; a listener always, so that a late one can never be unhandled.
    zipfile.on('error', () => {})
  }

  listing (): ArchiveListing {
    return {
      entries: this.#entries,
      readEntry: index => this.#track(this.#read(index)),
      close: () => this.close()
    }
  }

  async list (): Promise<void> {
    const zipfile = this.#zipfile
    if (zipfile.entryCount > this.#limits.maxItems * ENTRY_COUNT_FACTOR) {
      throw new BulkArchiveError(`The archive holds ${zipfile.entryCount} entries; at most ${this.#limits.maxItems * ENTRY_COUNT_FACTOR} are read ` +
        `(${this.#limits.maxItems} photos).`, 'too_many_entries')
    }
    const centralBytes = zipfile.fileSize - this.#centralDirectoryOffset
    if (centralBytes > this.#limits.maxItems * ENTRY_COUNT_FACTOR * CENTRAL_BYTES_PER_ENTRY + END_RECORDS_BYTES) {
      throw new BulkArchiveError(`The archive's central directory takes ${centralBytes} bytes, more than ${this.#limits.maxItems} photos need.`,
        'central_directory_too_large')
    }
    let expandedBytes = 0
    await new Promise<void>((resolve, reject) => {
      const onEntry = (entry: yauzl.Entry) => {
        try {
          expandedBytes += this.#add(entry)
          if (expandedBytes > this.#limits.maxExpandedBytes) {
            throw new BulkArchiveError(`The archive's photos would expand to more than ${this.#limits.maxExpandedBytes} bytes.`, 'expanded_too_large')
          }
        } catch (err) {
          done(err)
          return
        }
        zipfile.readEntry()
      }
      const done = (err?: unknown) => {
        zipfile.off('entry', onEntry)
        zipfile.off('end', done)
        zipfile.off('error', done)
        if (err === undefined) resolve(); else reject(err instanceof BulkArchiveError ? err : refusedArchive(err))
      }
      zipfile.on('entry', onEntry)
      zipfile.once('end', done)
      zipfile.once('error', done)
      zipfile.readEntry()
    })
    this.#checkSpans()
  }

  /** Lists one central record; returns the bytes it will expand to when read (0 when skipped or failed). */
  #add (entry: yauzl.Entry): number {
    const index = this.#spans.length
    this.#spans.push({
      start: entry.relativeOffsetOfLocalHeader,
      end: entry.relativeOffsetOfLocalHeader + LOCAL_HEADER_BYTES + entry.fileNameLength + entry.compressedSize,
      index
    })
    const named = nameOf(entry)
    if (named === 'skip') return 0
    if (this.#entries.length >= this.#limits.maxItems) {
      throw new BulkArchiveError(`The archive holds more than ${this.#limits.maxItems} files.`, 'too_many_items')
    }
    const problem = named.problem ?? contentProblem(entry, this.#limits)
    const listed: ArchiveEntry = { index, name: named.name, declaredBytes: entry.uncompressedSize, problem }
    this.#entries.push(listed)
    this.#byIndex.set(index, listed)
    if (problem !== null) return 0
    this.#locations.set(index, {
      offset: entry.relativeOffsetOfLocalHeader,
      compressedSize: entry.compressedSize,
      uncompressedSize: entry.uncompressedSize,
      deflated: entry.compressionMethod === DEFLATED,
      crc32: entry.crc32,
      boundary: this.#centralDirectoryOffset
    })
    return entry.uncompressedSize
  }

  /** Each entry's local header and data must end before the next one starts, and all before the central directory. */
  #checkSpans (): void {
    const spans = this.#spans.toSorted((a, b) => a.start - b.start)
    for (const [i, span] of spans.entries()) {
      const next = spans[i + 1]
      const boundary = next?.start ?? this.#centralDirectoryOffset
      if (span.end > boundary) {
        throw new BulkArchiveError('Entries of the archive overlap one another (a zip bomb\'s shape).', 'overlapping_entries')
      }
      const location = this.#locations.get(span.index)
      if (location) location.boundary = boundary
    }
    this.#spans.length = 0
  }

  async #read (index: number): Promise<Buffer> {
    if (this.#closing) throw new ArchiveClosedError()
    const entry = this.#byIndex.get(index)
    if (!entry) throw new RangeError(`No listed entry has index ${index}.`)
    if (entry.problem) throw problemError(entry.problem, this.#limits)
    const location = this.#locations.get(index)
    if (!location) throw new RangeError(`No listed entry has index ${index}.`)

    const dataStart = await this.#dataStart(location)
    // The local header may claim a longer name or extra field than the central record: its data must still end in its own span.
    if (dataStart + location.compressedSize > location.boundary) {
      throw new ArchiveEntryRefusedError('The entry\'s local header does not match its central record.', 'bad_local_header')
    }
    if (this.#closing) throw new ArchiveClosedError()
    const stream = await new Promise<Readable>((resolve, reject) => {
      this.#zipfile.openReadStreamLowLevel(dataStart, location.compressedSize, 0, location.compressedSize, location.deflated,
        location.uncompressedSize, (err, readable) => { if (err) reject(entryReadError(err)); else resolve(readable) })
    })
    this.#reading.add(stream)
    let bytes: Buffer
    try {
      bytes = await collect(stream, location.uncompressedSize)
    } catch (err) {
      throw this.#closing ? new ArchiveClosedError() : err
    } finally {
      this.#reading.delete(stream)
      stream.destroy()
    }
    if (crc32(bytes) !== location.crc32) throw new ArchiveEntryRefusedError('The entry\'s data does not match its CRC-32.', 'crc_mismatch')
    if (await isArchive(bytes)) throw new ArchiveEntryRefusedError('The entry is itself an archive; send the photos in one archive.', 'nested_archive')
    return bytes
  }

  #dataStart (location: Location): Promise<number> {
    // readLocalFileHeader reads only the offset and the two sizes of what it is given; not an Entry from the listing.
    const entry = Object.assign(new yauzl.Entry(), {
      relativeOffsetOfLocalHeader: location.offset,
      compressedSize: location.compressedSize
    })
    return new Promise((resolve, reject) => {
      this.#zipfile.readLocalFileHeader(entry, { minimal: true }, (err, header) => {
        if (err) reject(entryReadError(err)); else resolve(header.fileDataStart)
      })
    })
  }

  #track<T> (promise: Promise<T>): Promise<T> {
    const settled = promise.then(() => {}, () => {})
    this.#inFlight.add(settled)
    void settled.then(() => this.#inFlight.delete(settled))
    return promise
  }

  close (): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close (): Promise<void> {
    for (const stream of this.#reading) stream.destroy(new ArchiveClosedError())
    // No yauzl call may start once the descriptor may be closed (yauzl would read or close a reused number).
    await Promise.all(this.#inFlight)
    const zipfile = this.#zipfile
    const reader = (zipfile as unknown as { reader: NodeJS.EventEmitter }).reader
    await new Promise<void>(resolve => {
      reader.once('close', () => resolve())
      reader.once('error', () => resolve())
      zipfile.close()
    })
  }
}

/** The entry's name, or 'skip'; a name that cannot be used is one failed item, never a refused archive. */
function nameOf (entry: yauzl.Entry): 'skip' | { name: string, problem: EntryProblem | null } {
  if (entry.fileNameRaw.length > MAX_ENTRY_NAME_BYTES) {
    // Too long whatever its encoding: only its start is decoded (a CP437 name is decoded a character at a time).
    const start = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw.subarray(0, MAX_ENTRY_NAME_BYTES), [], false)
    if (start.split('/')[0] === '__MACOSX') return 'skip'
    return { name: boundedName(storableText(start)), problem: { code: 'BAD_USER_INPUT', reason: 'name_too_long' } }
  }
  // strictFileNames false: a Windows zipper's backslashes are separators ('a\..\b' is 'a/../b', unsafe).
  const decoded = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false)
  const name = boundedName(storableText(decoded))
  const segments = decoded.split('/')
  const unsafe = decoded === '' || yauzl.validateFileName(decoded) !== null || !isStorableText(decoded) ||
    /\p{Cc}/u.test(decoded) || BIDI_CONTROLS.test(decoded) || segments.some(segment => segment === '.' || segment === '..')
  if (unsafe) return { name, problem: { code: 'BAD_USER_INPUT', reason: 'unsafe_name' } }
  if (decoded.endsWith('/') || segments[0] === '__MACOSX' || segments.some(segment => segment.startsWith('.'))) return 'skip'
  if (decoded.length > MAX_ENTRY_NAME_LENGTH) return { name, problem: { code: 'BAD_USER_INPUT', reason: 'name_too_long' } }
  return { name, problem: null }
}

/**
 * A name of more bytes than this is longer than MAX_ENTRY_NAME_LENGTH UTF-16 code units in any encoding: UTF-8 takes
 * at most 3 bytes per code unit (4 for a pair), CP437 one.
 */
const MAX_ENTRY_NAME_BYTES = 3 * MAX_ENTRY_NAME_LENGTH
/** Right-to-left overrides and isolates: 'photo\u202Egpj.exe' shows as 'photoexe.jpg'. */
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/u

function boundedName (name: string): string {
  if (name.length <= MAX_ENTRY_NAME_LENGTH) return name
  // Cut on a code point: never half a surrogate pair.
  return name.slice(0, MAX_ENTRY_NAME_LENGTH).toWellFormed().replace(/\uFFFD$/, '')
}

function contentProblem (entry: yauzl.Entry, limits: ArchiveLimits): EntryProblem | null {
  if (entry.isEncrypted()) return { code: 'BAD_USER_INPUT', reason: 'encrypted' }
  if (entry.compressionMethod !== STORED && entry.compressionMethod !== DEFLATED) return { code: 'BAD_USER_INPUT', reason: 'unsupported_method' }
  if (entry.uncompressedSize > limits.maxEntryBytes) return { code: 'PAYLOAD_TOO_LARGE', reason: 'too_large' }
  if (entry.uncompressedSize === 0) return { code: 'BAD_USER_INPUT', reason: 'empty' }
  if (entry.uncompressedSize > entry.compressedSize * limits.maxCompressionRatio) return { code: 'BAD_USER_INPUT', reason: 'compression_ratio' }
  return null
}

const PROBLEM_MESSAGES: Record<string, string> = {
  unsafe_name: 'The entry\'s name is not a safe relative path.',
  name_too_long: `The entry's name is longer than ${MAX_ENTRY_NAME_LENGTH} characters.`,
  encrypted: 'The entry is encrypted.',
  unsupported_method: 'The entry is compressed with a method other than deflate.',
  empty: 'The file is empty.',
  compression_ratio: 'The entry expands far more than a photo does (a zip bomb\'s shape).'
}

/** The error readEntry rejects with for an entry listed with a problem. */
function problemError (problem: EntryProblem, limits: ArchiveLimits): Error {
  if (problem.code === 'PAYLOAD_TOO_LARGE') {
    return new ArchiveEntryTooLargeError(`The entry is larger than the ${limits.maxEntryBytes} bytes a photo may have.`, limits.maxEntryBytes)
  }
  return new ArchiveEntryRefusedError(PROBLEM_MESSAGES[problem.reason] ?? 'The entry cannot be read.', problem.reason)
}

/** Exactly `declared` bytes from the entry's stream, or a refusal: never more than `declared` bytes held (plus one chunk). */
async function collect (stream: Readable, declared: number): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(declared)
  let filled = 0
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (filled + chunk.length > declared) throw sizeMismatch()
      chunk.copy(bytes, filled)
      filled += chunk.length
    }
  } catch (err) {
    throw entryReadError(err)
  }
  if (filled !== declared) throw sizeMismatch()
  return bytes
}

function sizeMismatch () {
  return new ArchiveEntryRefusedError('The entry\'s data is not the size its header declares.', 'size_mismatch')
}

/** yauzl's and zlib's errors while reading one entry, as the item's refusal (their text stays out of the answer). */
function entryReadError (err: unknown): Error {
  if (err instanceof ArchiveEntryRefusedError) return err
  const message = err instanceof Error ? err.message : ''
  // yauzl's AssertByteCountStream: more or fewer bytes than declared.
  if (/too many bytes in the stream|not enough bytes in the stream/.test(message)) return sizeMismatch()
  return new ArchiveEntryRefusedError('The entry\'s data is corrupt or truncated.', 'corrupt_entry', { cause: err })
}

/** yauzl's errors while opening or listing, as the job's refusal (their text stays out of the answer). */
function refusedArchive (err: unknown): BulkArchiveError {
  const message = err instanceof Error ? err.message : ''
  if (/strong encryption/.test(message)) {
    return new BulkArchiveError('The archive uses strong encryption; send an unencrypted ZIP.', 'encrypted_archive', { cause: err })
  }
  if (/multi-disk/.test(message)) {
    return new BulkArchiveError('The archive spans several disks; send it as one ZIP file.', 'archive_unreadable', { cause: err })
  }
  return new BulkArchiveError('The archive is not a readable ZIP file (or it is truncated).', 'archive_unreadable', { cause: err })
}

const ARCHIVE_EXTENSIONS = new Set(['zip', 'gz', '7z', 'rar', 'tar', 'bz2', 'xz', 'zst', 'lz', 'lzh', 'cab', 'arj', 'cpio', 'ar', 'Z'])

/** A ZIP (by its signatures, whatever file-type makes of it: jar, docx...), gzip, 7z, rar, tar and the like. */
async function isArchive (bytes: Buffer): Promise<boolean> {
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && [0x0304, 0x0506, 0x0708].includes(bytes.readUInt16BE(2))) return true
  const sniffed = await fileTypeFromBuffer(bytes)
  return sniffed !== undefined && ARCHIVE_EXTENSIONS.has(sniffed.ext)
}
