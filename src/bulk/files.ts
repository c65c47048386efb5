// Where a bulk job's files are, under DATA_DIR/bulk: uploads being received (incoming/), then each job's folder
// (jobs/<id>/): its archive (archive.zip) or its photos (images/<i>), and its prepared images (prepared/<item id>, and
// prepared/<item id>.low for an ADAPTIVE item's first look in GLOBAL_BATCH).
// The folder goes when the job ends. Another instance on the same database sees a job whose folder it lacks:
// it leaves it (DATA_DIR must be shared for instances to share jobs' work).
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { openArchive, type ArchiveLimits } from './archive/zip.ts'

export class BulkFiles {
  readonly root: string

  constructor (root: string) {
    this.root = root
  }

  /** Where uploads are streamed while received (the upload policy's folder). */
  get incoming (): string { return join(this.root, 'incoming') }
  jobDir (jobId: string): string { return join(this.root, 'jobs', jobId) }
  archivePath (jobId: string): string { return join(this.jobDir(jobId), 'archive.zip') }
  imagesDir (jobId: string): string { return join(this.jobDir(jobId), 'images') }
  preparedDir (jobId: string): string { return join(this.jobDir(jobId), 'prepared') }
  preparedPath (jobId: string, itemId: string): string { return join(this.preparedDir(jobId), itemId) }
  /** An ADAPTIVE item's LOW image (GLOBAL_BATCH: its first look's), beside its HIGH one. */
  preparedLowPath (jobId: string, itemId: string): string { return `${this.preparedPath(jobId, itemId)}.low` }

  async makeJobDir (jobId: string): Promise<void> {
    await mkdir(this.preparedDir(jobId), { recursive: true, mode: 0o700 })
  }

  /** True when this instance holds the job's folder. */
  async hasJob (jobId: string): Promise<boolean> {
    try {
      return (await stat(this.jobDir(jobId))).isDirectory()
    } catch {
      return false
    }
  }

  async removeJob (jobId: string): Promise<void> {
    await rm(this.jobDir(jobId), { recursive: true, force: true })
  }

  /**
   * At start-up: uploads a killed process was receiving (none is in flight yet), and the folders of jobs that ended
   * (killed between ending the job and removing its folder) or were never stored (killed while being created).
   */
  async sweep (unfinished: (jobIds: string[]) => Promise<Set<string>>): Promise<number> {
    // Only what is older than this process: an upload or a job being created right now is left alone.
    const started = Date.now() - performance.now()
    for (const name of await olderThan(this.incoming, started)) await rm(join(this.incoming, name), { force: true })
    const ids = (await olderThan(join(this.root, 'jobs'), started)).filter(name => /^[0-9a-f-]{36}$/.test(name))
    if (ids.length === 0) return 0
    const keep = await unfinished(ids)
    const gone = ids.filter(id => !keep.has(id))
    for (const id of gone) await this.removeJob(id)
    return gone.length
  }
}

/** A job's photos as received: an archive's entries, or the uploaded files, by entry index. */
export interface JobSource {
  read (entryIndex: number): Promise<Buffer>
  close (): Promise<void>
}

/** The job's source: its archive when it has one, else its folder of photos. */
export async function openSource (files: BulkFiles, jobId: string, limits: ArchiveLimits): Promise<JobSource> {
  const archive = files.archivePath(jobId)
  if (await exists(archive)) {
    const listing = await openArchive(archive, limits)
    return { read: async index => await listing.readEntry(index), close: async () => { await listing.close() } }
  }
  const dir = files.imagesDir(jobId)
  return { read: async index => await readFile(join(dir, String(index))), close: async () => {} }
}

/** The names in `dir` last changed before `time` (none when there is no such folder). */
async function olderThan (dir: string, time: number): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return []
  }
  const old: string[] = []
  for (const name of names) {
    try {
      if ((await stat(join(dir, name))).mtimeMs < time) old.push(name)
    } catch {}
  }
  return old
}

/** Whether something is at `path` (a file or folder); false on any error. */
export async function exists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}
