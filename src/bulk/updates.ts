// bulkJobUpdated: a job's view published on its own topic (carried between instances by Redis, msgpack-encoded:
// times as numbers), on each status change and at most once a second while it makes progress.
import type { BulkJobView } from './public.ts'

export function jobTopic (jobId: string): string {
  return `agrivision:bulk-job:${jobId}`
}

export interface JobMessage extends Omit<BulkJobView, 'createdAt' | 'completedAt'> {
  createdAt: number
  completedAt: number | null
}

export function messageOf (view: BulkJobView): JobMessage {
  return { ...view, createdAt: view.createdAt.getTime(), completedAt: view.completedAt?.getTime() ?? null }
}

export function viewOfMessage (message: JobMessage): BulkJobView {
  const completedAt = message.completedAt === null ? null : new Date(message.completedAt)
  return { ...message, createdAt: new Date(message.createdAt), completedAt }
}

/** Progress of a running job, published at most once per `intervalMs` per job (this instance's), and only when it changed. */
export class ProgressThrottle {
  readonly #last = new Map<string, { at: number, key: string }>()
  readonly #intervalMs: number

  constructor (intervalMs = 1000) {
    this.#intervalMs = intervalMs
  }

  /** True when `key` (what the subscriber would see) changed and the job's last publication is old enough. */
  due (jobId: string, key: string, now = Date.now()): boolean {
    const last = this.#last.get(jobId)
    if (last !== undefined && (last.key === key || now - last.at < this.#intervalMs)) return false
    this.#last.set(jobId, { at: now, key })
    return true
  }

  forget (jobId: string): void { this.#last.delete(jobId) }
}
