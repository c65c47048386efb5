// A file of a multipart request streamed to disk, for an upload policy with a folder (an archive of thousands of
// photos must never be whole in memory): a new file of a random name (created exclusively, owner-only), written
// as the bytes arrive under a byte cap, flushed to disk (fsync) before anyone uses it, and removed on any error,
// abort or refusal, and when the request ends unless its consumer took it (`take`: moved where it keeps it).
import { randomUUID } from 'node:crypto'
import { mkdir, open, rename, unlink } from 'node:fs/promises'
import { unlinkSync } from 'node:fs'
import { join } from 'node:path'

export interface StoredFile {
  /** Where it is now (until taken). */
  readonly path: string
  readonly bytes: number
  /** Moves it to `destination` (same file system): from then on it is the caller's, and `discard` leaves it. */
  take (destination: string): Promise<void>
  /** Removes it unless taken. Idempotent; never throws. */
  discard (): void
}

/**
 * Streams `chunks` into a new file in `dir`; past `maxBytes`, throws `tooLarge` (the file removed). `created` is
 * told of the file as soon as it exists, so that the caller removes it should anything after fail.
 */
export async function receiveToDisk (
  chunks: AsyncIterable<Buffer>, dir: string, maxBytes: number, tooLarge: Error, created: (file: StoredFile) => void
): Promise<StoredFile> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, `upload-${randomUUID()}`)
  const handle = await open(path, 'wx', 0o600)
  let bytes = 0
  let taken = false
  let gone = false
  const file: StoredFile = {
    get path () { return path },
    get bytes () { return bytes },
    async take (destination) {
      if (gone) throw new Error('the upload was discarded')
      await rename(path, destination)
      taken = true
    },
    discard () {
      if (taken || gone) return
      gone = true
      try { unlinkSync(path) } catch {}
    }
  }
  created(file)
  try {
    for await (const chunk of chunks) {
      bytes += chunk.length
      if (bytes > maxBytes) throw tooLarge
      await handle.write(chunk)
    }
    await handle.sync()
  } catch (err) {
    await handle.close().catch(() => {})
    await unlink(path).catch(() => {})
    gone = true
    throw err
  }
  await handle.close()
  return file
}
