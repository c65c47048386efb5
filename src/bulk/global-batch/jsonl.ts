// The batch input files: one JSONL line per item, `custom_id` = the item's id, the body the online path
// sends (chat-request.ts: the same structured-output request, the downscaled image as a data URL, its
// base64 spliced in without a second copy). Within Azure's limits: at most 100,000 lines and 200 MB per
// file (we stop at 190 MB), one deployment and one url per file, no BOM, UTF-8, a line never split.
// Each file is written beside its final name and renamed once complete and synced: a crash leaves no
// half file under a chunk's name.
import { open, rename, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeChatRequest, type ChatRequestInput } from '../../vision/chat-request.ts'

/** Azure's own limit is 100,000 lines per file. */
export const MAX_LINES_PER_FILE = 100_000
/** Azure's own limit is 200 MB per file; kept under it with room for its counting. */
export const MAX_BYTES_PER_FILE = 190_000_000

export interface JsonlWriterOptions {
  dir: string
  /** The Global Batch deployment: every line's `body.model`. */
  deployment: string
  /** Every line's `url`: the batch client's chatUrl. */
  url: string
  maxTokens: number
  maxLines?: number
  maxBytes?: number
  /** The id of the next chunk (the caller records it before its file exists, so a restart finds it). */
  nextChunkId: () => string
}

export interface ChunkFile {
  chunkId: string
  path: string
  lines: number
  bytes: number
  /** The custom_ids in the file, in order. */
  itemIds: string[]
}

/** One item's line would be larger than a whole file may be. */
export class LineTooLargeError extends Error {
  readonly bytes: number
  readonly maxBytes: number
  constructor (bytes: number, maxBytes: number) {
    super(`a batch line of ${bytes} bytes exceeds the file limit of ${maxBytes} bytes`)
    this.bytes = bytes
    this.maxBytes = maxBytes
    this.name = 'LineTooLargeError'
  }
}

interface OpenChunk { chunk: ChunkFile, handle: FileHandle, partial: string }

/** Item ids are our own UUIDs (`<id>:high` for an ADAPTIVE item's second look); anything else would need escaping and is refused. */
const ITEM_ID = /^[\w.:-]{1,64}$/

export function chunkPath (dir: string, chunkId: string): string {
  return join(dir, `${chunkId}.jsonl`)
}

export class JsonlWriter {
  readonly #options: Required<JsonlWriterOptions>
  readonly #done: ChunkFile[] = []
  #current: OpenChunk | undefined

  constructor (options: JsonlWriterOptions) {
    this.#options = { maxLines: MAX_LINES_PER_FILE, maxBytes: MAX_BYTES_PER_FILE, ...options }
  }

  /** Appends the item's line, starting a new file when this one would pass a limit; returns the item's chunk id. */
  async add (itemId: string, request: ChatRequestInput): Promise<string> {
    if (!ITEM_ID.test(itemId)) throw new Error('a batch custom_id must be a short id of letters, digits, "_", "-" or "."')
    const { deployment, url, maxTokens, maxLines, maxBytes } = this.#options
    const head = Buffer.from(`{"custom_id":${JSON.stringify(itemId)},"method":"POST","url":${JSON.stringify(url)},"body":`, 'utf8')
    const body = encodeChatRequest(deployment, request, maxTokens)
    const bytes = head.length + body.length + TAIL.length
    if (bytes > maxBytes) throw new LineTooLargeError(bytes, maxBytes)
    let current = this.#current
    if (current !== undefined && (current.chunk.lines + 1 > maxLines || current.chunk.bytes + bytes > maxBytes)) {
      await this.#close(current)
      current = undefined
    }
    current ??= await this.#start()
    // Three buffers to the file as they are: the image's base64 is never copied into one line string.
    await writeAll(current.handle, [head, body, TAIL])
    current.chunk.lines++
    current.chunk.bytes += bytes
    current.chunk.itemIds.push(itemId)
    return current.chunk.chunkId
  }

  /** Closes the last file; every chunk written, in order. */
  async finish (): Promise<ChunkFile[]> {
    if (this.#current !== undefined) await this.#close(this.#current)
    return [...this.#done]
  }

  /** Removes the file being written (on failure). Finished chunks are the caller's. */
  async abort (): Promise<void> {
    const current = this.#current
    this.#current = undefined
    if (current === undefined) return
    await current.handle.close().catch(() => {})
    await rm(current.partial, { force: true })
  }

  async #start (): Promise<OpenChunk> {
    const chunkId = this.#options.nextChunkId()
    const path = chunkPath(this.#options.dir, chunkId)
    const partial = `${path}.partial`
    const handle = await open(partial, 'w', 0o600)
    this.#current = { chunk: { chunkId, path, lines: 0, bytes: 0, itemIds: [] }, handle, partial }
    return this.#current
  }

  async #close (current: OpenChunk): Promise<void> {
    await current.handle.sync()
    await current.handle.close()
    await rename(current.partial, current.chunk.path)
    this.#done.push(current.chunk)
    this.#current = undefined
  }
}

const TAIL = Buffer.from('}\n', 'utf8')

async function writeAll (handle: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers
  while (pending.length > 0) {
    let { bytesWritten } = await handle.writev(pending)
    const rest: Buffer[] = []
    for (const buffer of pending) {
      if (bytesWritten >= buffer.length) { bytesWritten -= buffer.length; continue }
      rest.push(buffer.subarray(bytesWritten))
      bytesWritten = 0
    }
    pending = rest
  }
}
