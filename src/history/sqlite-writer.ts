// node:sqlite is synchronous: whatever it does, it does on the thread that calls it. A history write
// is some fifteen B-tree inserts (the record, its filter keys, its usage), 0.3–0.7 ms measured, and a
// commit that crosses SQLite's checkpoint threshold fsyncs for 10–15 ms; on the request thread, every
// request waited for them. So the request thread's connection never checkpoints (wal_autocheckpoint = 0)
// and does only the rare writes a caller waits for (deletes, idempotency keys); a worker thread with its
// own connection writes the records and thumbnails and checkpoints every second. If the worker dies, its
// jobs fail (the recorder keeps the records and retries), the next job starts a new one, and automatic
// checkpoints come back on the request thread's connection meanwhile, so the log cannot grow without bound.
import { Worker } from 'node:worker_threads'
import type { DatabaseSync } from 'node:sqlite'
import type { HistoryRecord } from './records.ts'

const WORKER = new URL('./sqlite-writer-worker.ts', import.meta.url)
const CHECKPOINT_INTERVAL_MS = 1000
const CLOSE_TIMEOUT_MS = 5000

export type WriterJob =
  | { type: 'insertMany', job: number, records: readonly HistoryRecord[] }
  | { type: 'saveThumbnail', job: number, id: string, jpeg: Uint8Array, createdAt: Date }
  | { type: 'close' }

export type WriterReply =
  | { type: 'done', job: number }
  | { type: 'failed', job: number, message: string, driver?: DriverError }
  | { type: 'problem', message: string }

/** What node:sqlite said, carried across the thread so that the recorder can tell a record's fault from the database's. */
export interface DriverError { code?: string, errcode?: number, errstr?: string }

/** The worker's failure as the caller's error, with node:sqlite's code and result code on it. */
export function writerError (message: string, driver: DriverError = {}): Error {
  return Object.assign(new Error(message), driver)
}

export interface SqliteWriter {
  insertMany (records: readonly HistoryRecord[]): Promise<void>
  saveThumbnail (id: string, jpeg: Uint8Array, createdAt: Date): Promise<void>
  close (): Promise<void>
}

/** `hooks`: the RecordHooks' sqliteModule hrefs, read when a worker starts (they are all registered by then). */
export function startSqliteWriter (
  raw: DatabaseSync, file: string, onProblem: (message: string) => void = () => {}, hooks: () => readonly string[] = () => []
): SqliteWriter {
  raw.exec('PRAGMA wal_autocheckpoint = 0')
  const pending = new Map<number, { resolve: () => void, reject: (err: Error) => void }>()
  let nextJob = 0
  let worker: Worker | null = null
  let closed = false

  const start = (): Worker => {
    const started = new Worker(WORKER, { workerData: { file, checkpointIntervalMs: CHECKPOINT_INTERVAL_MS, hooks: [...hooks()] } })
    started.on('message', (reply: WriterReply) => {
      if (reply.type === 'problem') { onProblem(reply.message); return }
      const waiter = pending.get(reply.job)
      pending.delete(reply.job)
      if (pending.size === 0) started.unref()
      if (reply.type === 'done') waiter?.resolve()
      else waiter?.reject(writerError(reply.message, reply.driver))
    })
    const lost = (why: string): void => {
      if (worker === started) worker = null
      for (const waiter of pending.values()) waiter.reject(new Error(`history writer: ${why}`))
      pending.clear()
      if (!closed) {
        onProblem(why)
        try { raw.exec('PRAGMA wal_autocheckpoint = 1000') } catch {} // until a new worker checkpoints again
      }
    }
    started.on('error', err => { lost(err.message) })
    started.on('exit', code => { lost(`worker exited (code ${code})`) })
    started.unref() // idle, never what keeps the process alive (after the listeners: adding one refs it again)
    if (!closed) try { raw.exec('PRAGMA wal_autocheckpoint = 0') } catch {}
    return started
  }

  const send = async (job: WriterJob & { job: number }): Promise<void> => {
    if (closed) throw new Error('history writer closed')
    worker ??= start()
    const done = new Promise<void>((resolve, reject) => { pending.set(job.job, { resolve, reject }) })
    worker.ref() // a job in flight keeps the process alive until it is answered
    worker.postMessage(job)
    await done
  }

  return {
    insertMany: async (records) => { await send({ type: 'insertMany', job: nextJob++, records }) },
    saveThumbnail: async (id, jpeg, createdAt) => { await send({ type: 'saveThumbnail', job: nextJob++, id, jpeg, createdAt }) },
    async close () {
      if (closed) return
      closed = true
      const running = worker
      if (running === null) return
      const exited = new Promise<void>(resolve => running.once('exit', () => resolve()))
      running.postMessage({ type: 'close' } satisfies WriterJob)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([exited, new Promise<void>(resolve => { timer = setTimeout(resolve, CLOSE_TIMEOUT_MS) })])
      clearTimeout(timer)
      await running.terminate()
    }
  }
}
