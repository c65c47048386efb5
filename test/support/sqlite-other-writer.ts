// Another connection to a SQLite file that holds the write lock (BEGIN IMMEDIATE), writes, and commits `holdMs`
// later: what the history writer thread does while the request thread's connection works. On a thread of its own:
// node:sqlite is synchronous, so an operation of this thread waiting for the lock blocks it, and the commit it
// waits for has to come from elsewhere.
import { Worker } from 'node:worker_threads'
import type { SQLInputValue } from 'node:sqlite'

const HOLDER = `
const { parentPort, workerData } = require('node:worker_threads')
const { DatabaseSync } = require('node:sqlite')
const { file, sql, params, holdMs } = workerData
const db = new DatabaseSync(file)
db.exec('PRAGMA busy_timeout = 5000')
db.exec('BEGIN IMMEDIATE')
const changes = db.prepare(sql).run(...params).changes
parentPort.postMessage({ held: changes })
setTimeout(() => {
  db.exec('COMMIT')
  db.close()
  parentPort.postMessage({ committed: true })
}, holdMs)
`

export interface HeldWrite {
  /** Rows the write changed (it is not committed yet). */
  changes: number
  /** Resolves once the write is committed and the connection closed. */
  committed: Promise<void>
}

/** Resolves once the other connection holds the write lock and has written (uncommitted); it commits `holdMs` later. */
export async function holdWrite (file: string, sql: string, params: SQLInputValue[], holdMs: number): Promise<HeldWrite> {
  const worker = new Worker(HOLDER, { eval: true, workerData: { file, sql, params, holdMs } })
  let held!: (changes: number) => void
  let committed!: () => void
  const heldNow = new Promise<number>(resolve => { held = resolve })
  const done = new Promise<void>(resolve => { committed = resolve })
  const failed = new Promise<never>((_resolve, reject) => {
    worker.once('error', reject)
    worker.once('exit', code => { reject(new Error(`the other writer exited (${code}) before committing`)) })
  })
  failed.catch(() => {})
  worker.on('message', (message: { held?: number, committed?: boolean }) => {
    if (message.held !== undefined) held(message.held)
    if (message.committed === true) committed()
  })
  const changes = await Promise.race([heldNow, failed])
  return { changes, committed: Promise.race([done, failed]).finally(() => worker.terminate()) }
}
