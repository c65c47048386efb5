// The SQLite writer's thread (see sqlite-writer.ts): its own connection to the history file, the same
// HistoryStore code as the request thread, one job at a time (Kysely serialises them on the connection),
// and a PASSIVE checkpoint every second for every connection's writes (never waiting for, nor blocking, a writer).
import { parentPort, workerData } from 'node:worker_threads'
import { Kysely, SqliteDialect } from 'kysely'
import { openSqlite } from '../database/sqlite.ts'
import { HistoryStore } from './store.ts'
import { prepareRecordWriter, type SqliteRecordWriter } from './sqlite-records.ts'
import type { HistoryTables } from './tables.ts'
import { StorableTextPlugin } from '../storable-text.ts'
import type { WriterJob, WriterReply } from './sqlite-writer.ts'
import type { SqliteRecordHook } from './types.ts'

const { file, checkpointIntervalMs, hooks } = workerData as { file: string, checkpointIntervalMs: number, hooks: string[] }
const { database, raw } = openSqlite(file)
// The same plugin as every other connection: what the worker writes is made storable too.
const db = new Kysely<HistoryTables>({ dialect: new SqliteDialect({ database }), plugins: [new StorableTextPlugin()] })
const store = new HistoryStore(db)
let writeRecords: SqliteRecordWriter | null = null // prepared at the first batch (the schema is migrated by then)
const port = parentPort!

const checkpoints = setInterval(() => {
  try {
    raw.exec('PRAGMA wal_checkpoint(PASSIVE)')
  } catch (err) {
    port.postMessage({ type: 'problem', message: `checkpoint failed: ${(err as Error).message}` } satisfies WriterReply)
  }
}, checkpointIntervalMs)

// Other features' rows in each batch's transaction (RecordHook.sqliteModule), loaded before the first job.
type HookModule = { prepare: (db: typeof raw) => SqliteRecordHook }
const hookModules = Promise.all(hooks.map(async href => await import(href) as HookModule))

// One job at a time: a batch's raw transaction must not start inside a thumbnail's Kysely transaction.
let queue: Promise<unknown> = hookModules.catch(() => [])
port.on('message', (job: WriterJob) => { queue = queue.then(async () => { await run(job) }) })

async function run (job: WriterJob): Promise<void> {
  if (job.type === 'close') {
    clearInterval(checkpoints)
    try { raw.exec('PRAGMA wal_checkpoint(PASSIVE)') } catch {}
    await db.destroy()
    port.close()
    return
  }
  try {
    if (job.type === 'insertMany') {
      writeRecords ??= prepareRecordWriter(raw, (await hookModules).map(module => module.prepare(raw)))
      writeRecords(job.records)
    } else await store.saveThumbnail(job.id, job.jpeg, job.createdAt)
    port.postMessage({ type: 'done', job: job.job } satisfies WriterReply)
  } catch (err) {
    const { code, errcode, errstr } = err as { code?: unknown, errcode?: unknown, errstr?: unknown }
    const driver = {
      ...(typeof code === 'string' ? { code } : {}),
      ...(typeof errcode === 'number' ? { errcode } : {}),
      ...(typeof errstr === 'string' ? { errstr } : {})
    }
    port.postMessage({ type: 'failed', job: job.job, message: (err as Error).message, driver } satisfies WriterReply)
  }
}
