// The SQLite checkpointer's thread (see sqlite-checkpointer.ts): its own connection to the history file,
// a PASSIVE checkpoint every interval (it never waits for, nor blocks, the writer), one more on 'stop'.
import { parentPort, workerData } from 'node:worker_threads'
import { DatabaseSync } from 'node:sqlite'

const { file, intervalMs } = workerData as { file: string, intervalMs: number }
const db = new DatabaseSync(file)
db.exec('PRAGMA busy_timeout = 1000')

function checkpoint (): void {
  try {
    db.exec('PRAGMA wal_checkpoint(PASSIVE)')
  } catch (err) {
    parentPort?.postMessage({ type: 'error', message: (err as Error).message })
  }
}

const timer = setInterval(checkpoint, intervalMs)
parentPort?.on('message', (message: { type: string }) => {
  if (message.type !== 'stop') return
  clearInterval(timer)
  checkpoint()
  db.close()
  parentPort?.close()
})
