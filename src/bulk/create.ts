// A new job from what was received: the files moved into the job's folder, the archive listed (refused as a
// whole when it must be: BulkArchiveError), one item per photo (an entry that cannot be used is FAILED at once
// with its code), all stored in one transaction. Any failure leaves no file behind.
import { randomUUID } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Caller } from '../callers/caller.ts'
import { BadUserInputError } from '../errors.ts'
import { openArchive, type ArchiveLimits } from './archive/zip.ts'
import type { BulkFiles } from './files.ts'
import type { NewBulkJob } from './public.ts'
import type { BulkStore, NewItem } from './store.ts'
import type { BulkModeName } from './tables.ts'

export async function createJob (
  { store, files, archiveLimits }: { store: BulkStore, files: BulkFiles, archiveLimits: ArchiveLimits },
  caller: Caller, mode: BulkModeName, job: NewBulkJob
): Promise<string> {
  const id = randomUUID()
  try {
    await files.makeJobDir(id)
    const items = 'archive' in job.source
      ? await archiveItems(files, id, job.source.archive, archiveLimits)
      : await imageItems(files, id, job.source.images, archiveLimits.maxEntryBytes)
    if (items.length === 0) throw new BadUserInputError('The archive holds no photo (folders, __MACOSX/ and dot-files are skipped).', { argument: 'archive', reason: 'empty' })
    await store.createJob({
      id,
      callerId: caller.id,
      callerKind: caller.kind,
      status: 'RECEIVED',
      mode,
      detail: job.detail,
      language: job.language,
      instructions: job.instructions,
      archivePath: files.jobDir(id)
    }, items)
    return id
  } catch (err) {
    await files.removeJob(id)
    throw err
  }
}

async function archiveItems (
  files: BulkFiles, jobId: string, archive: NonNullable<Extract<NewBulkJob['source'], { archive: unknown }>['archive']>,
  limits: ArchiveLimits): Promise<NewItem[]> {
  const path = files.archivePath(jobId)
  await archive.take(path)
  const listing = await openArchive(path, limits)
  try {
    return listing.entries.map((entry, seq) => ({
      id: randomUUID(),
      seq,
      name: entry.name,
      entryIndex: entry.index,
      status: entry.problem === null ? 'PENDING' : 'FAILED',
      code: entry.problem?.code ?? null
    }))
  } finally {
    await listing.close()
  }
}

async function imageItems (
  files: BulkFiles, jobId: string, images: NonNullable<Extract<NewBulkJob['source'], { images: unknown }>['images']>, maxBytes: number
): Promise<NewItem[]> {
  const dir = files.imagesDir(jobId)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const items: NewItem[] = []
  for (const [index, image] of images.entries()) {
    await image.take(join(dir, String(index)))
    // Larger than MAX_UPLOAD_BYTES: refused as identifyVehicle refuses it, this item only.
    const tooLarge = image.bytes > maxBytes
    items.push({
      id: randomUUID(), seq: index, name: `images[${index}]`, entryIndex: index, status: tooLarge ? 'FAILED' : 'PENDING', code: tooLarge ? 'PAYLOAD_TOO_LARGE' : null
    })
  }
  return items
}
