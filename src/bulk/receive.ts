// Whether a createBulkJob may be received, decided once its `operations` is read and before any file is:
// the caller's jobs not finished (in the database, every instance's) and its uploads being received here stay
// under BULK_MAX_ACTIVE_JOBS_PER_CALLER (else RATE_LIMITED); the archive bytes being received by this instance
// under BULK_MAX_RECEIVING_BYTES, and DATA_DIR keeps BULK_MIN_FREE_BYTES free beyond them (else OVERLOADED).
import { mkdir, statfs } from 'node:fs/promises'
import { OverloadedError, RateLimitedError } from '../errors.ts'

export interface ReceivingOptions {
  maxActiveJobsPerCaller: number
  maxReceivingBytes: number
  minFreeBytes: number
  /** Where uploads are written (its file system's free space is checked). */
  dir: string
  /** The caller's jobs not finished, from the database. */
  activeJobs: (callerId: string) => Promise<number>
}

export class BulkReceiving {
  readonly #o: ReceivingOptions
  readonly #perCaller = new Map<string, number>()
  #bytes = 0

  constructor (options: ReceivingOptions) {
    this.#o = options
  }

  /** Uploads being received by `callerId` on this instance (each counts as a job until created or refused). */
  receiving (callerId: string): number { return this.#perCaller.get(callerId) ?? 0 }
  get bytes (): number { return this.#bytes }

  /** Admits one upload of at most `bytes` (its content-length; the archive limit when none) or throws; returns its release. */
  async admit (callerId: string, bytes: number): Promise<() => void> {
    // Counted at once, before any wait: two uploads of one caller at the same moment cannot both pass.
    const before = this.receiving(callerId)
    this.#perCaller.set(callerId, before + 1)
    this.#bytes += bytes
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      this.#bytes -= bytes
      const left = this.receiving(callerId) - 1
      if (left > 0) this.#perCaller.set(callerId, left)
      else this.#perCaller.delete(callerId)
    }
    try {
      await this.#check(callerId, before, bytes)
    } catch (err) {
      release()
      throw err
    }
    return release
  }

  async #check (callerId: string, receivingBefore: number, bytes: number): Promise<void> {
    const { maxActiveJobsPerCaller: most } = this.#o
    if (await this.#o.activeJobs(callerId) + receivingBefore >= most) {
      throw new RateLimitedError(`At most ${most} bulk jobs not finished per caller (BULK_MAX_ACTIVE_JOBS_PER_CALLER): ` +
        'wait for one to complete, or cancel one. Try again in 60 s.', 60)
    }
    if (this.#bytes > this.#o.maxReceivingBytes) {
      throw new OverloadedError('The server is receiving as many archives as it takes at once. Try again in 60 s.', 60)
    }
    await mkdir(this.#o.dir, { recursive: true, mode: 0o700 })
    const space = await statfs(this.#o.dir)
    // Every upload admitted here may still write what it declared: count it all against the free space.
    if (Number(space.bavail) * Number(space.bsize) - this.#bytes < this.#o.minFreeBytes) {
      throw new OverloadedError('The server has not enough free disk space for this archive now. Try again in 60 s.', 60)
    }
  }
}
