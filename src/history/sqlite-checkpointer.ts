// node:sqlite is synchronous: whatever it does, it does on the event loop. A commit that crosses
// SQLite's automatic checkpoint threshold copies the write-ahead log into the database and fsyncs
// both, 10–15 ms measured (the p99 of a history write), while every request waits. So the request
// thread's connection never checkpoints (wal_autocheckpoint = 0), and a worker thread with its own
// connection does it every second instead: the fsyncs happen off the event loop. If the worker dies,
// automatic checkpoints come back, so the log cannot grow without bound.
import { Worker } from 'node:worker_threads'
import type { DatabaseSync } from 'node:sqlite'

const WORKER = new URL('./sqlite-checkpoint-worker.ts', import.meta.url)
const INTERVAL_MS = 1000
const STOP_TIMEOUT_MS = 5000

export interface Checkpointer {
  stop (): Promise<void>
}

export function startCheckpointer (raw: DatabaseSync, file: string, onError: (message: string) => void = () => {}): Checkpointer {
  raw.exec('PRAGMA wal_autocheckpoint = 0')
  const worker = new Worker(WORKER, { workerData: { file, intervalMs: INTERVAL_MS } })
  let stopping = false
  const fallBack = (message: string): void => {
    onError(message)
    try { raw.exec('PRAGMA wal_autocheckpoint = 1000') } catch {} // the connection may be closed already
  }
  worker.on('message', (message: { type: string, message?: string }) => {
    if (message.type === 'error') onError(message.message ?? 'checkpoint failed')
  })
  worker.on('error', err => { fallBack(err.message) })
  worker.on('exit', code => { if (!stopping && code !== 0) fallBack(`checkpoint worker exited with code ${code}`) })
  worker.unref() // never what keeps the process alive (after the listeners: adding one refs it again)
  return {
    async stop () {
      if (stopping) return
      stopping = true
      const exited = new Promise<void>(resolve => worker.once('exit', () => resolve()))
      worker.postMessage({ type: 'stop' })
      let timer: NodeJS.Timeout | undefined
      await Promise.race([exited, new Promise<void>(resolve => { timer = setTimeout(resolve, STOP_TIMEOUT_MS) })])
      clearTimeout(timer)
      await worker.terminate()
    }
  }
}
