// History records into SQLite with statements prepared once, a batch in one transaction: the same rows as
// HistoryStore.insertMany (store.ts, which PostgreSQL and the tests' own checks use), without building and
// compiling a query per batch. Measured (bench, 2 cores): Kysely ~250 µs of CPU per record at 16 a batch,
// these ~150 µs, most of it SQLite's own B-tree and WAL work (a record touches some fifteen index entries).
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { filterKeys, OK, toRow, type HistoryRecord } from './records.ts'
import { storableText } from '../storable-text.ts'
import type { SqliteRecordHook, WrittenRecord } from './types.ts'

const DAY_MS = 86_400_000

/** identifications' columns, in the order of the insert's parameters (has_thumbnail: a subquery on the id). */
const COLUMNS = ['id', 'caller_id', 'caller_kind', 'created_at', 'outcome', 'cached', 'language', 'detail', 'backend', 'model',
  'backend_name', 'answer', 'vehicles', 'image', 'image_sha256', 'prompt_tokens', 'completion_tokens', 'duration_ms',
  'cache_key', 'has_thumbnail', 'deleted', 'bulk_job_id', 'batch'] as const

export type SqliteRecordWriter = (records: readonly HistoryRecord[]) => void

/**
 * Prepares the statements (the schema must be migrated); returns the function that writes a batch, with every
 * RecordHook's rows (other features', prepared by their sqliteModule) in the same transaction.
 */
export function prepareRecordWriter (db: DatabaseSync, hooks: readonly SqliteRecordHook[] = []): SqliteRecordWriter {
  const statement = (sql: string): StatementSync => db.prepare(sql)
  const identification = statement(
    `insert into identifications (${COLUMNS.join(', ')}) values (` +
    // Its thumbnail may have been stored first (the record waited in the buffer while the database was down).
    COLUMNS.map(c => c === 'has_thumbnail' ? '(select count(*) from thumbnails where identification_id = ?)' : '?').join(', ') +
    ') on conflict (id) do nothing')
  const category = statement('insert into identification_categories (identification_id, caller_id, created_at, category) values (?, ?, ?, ?)')
  const make = statement('insert into identification_makes (identification_id, caller_id, created_at, make_key) values (?, ?, ?, ?)')
  const pair = statement('insert into identification_vehicles (identification_id, caller_id, created_at, category, make_key) values (?, ?, ?, ?, ?)')
  const usage = statement(
    'insert into usage_daily (day, caller_id, model, identifications, failed, cached, prompt_tokens, completion_tokens, ' +
    'batch_prompt_tokens, batch_completion_tokens) ' +
    'values (?, ?, ?, 1, ?, ?, ?, ?, ?, ?) on conflict (day, caller_id, model) do update set ' +
    'identifications = identifications + 1, failed = failed + excluded.failed, cached = cached + excluded.cached, ' +
    'prompt_tokens = prompt_tokens + excluded.prompt_tokens, completion_tokens = completion_tokens + excluded.completion_tokens, ' +
    'batch_prompt_tokens = batch_prompt_tokens + excluded.batch_prompt_tokens, ' +
    'batch_completion_tokens = batch_completion_tokens + excluded.batch_completion_tokens')
  const params = new Array<string | number | null>(COLUMNS.length)

  return (records) => {
    if (records.length === 0) return
    db.exec('BEGIN IMMEDIATE')
    try {
      const written: WrittenRecord[] = []
      for (const record of records) {
        const row = toRow(record) as unknown as Record<string, string | number | null>
        for (let i = 0; i < COLUMNS.length; i++) {
          const column = COLUMNS[i] as string
          const value = column === 'has_thumbnail' ? record.id : row[column] as string | number | null
          // Made storable like every other write (storable-text.ts; these statements bypass its Kysely plugin).
          params[i] = typeof value === 'string' ? storableText(value) : value
        }
        // A record already written (a batch retried after a lost reply) changes nothing.
        if (identification.run(...params).changes === 0) continue
        const createdAt = record.createdAt.getTime()
        written.push({
          id: storableText(record.id),
          ok: record.outcome === OK,
          outcome: record.outcome,
          createdAt,
          bulkJobId: record.bulkJobId ?? null,
          promptTokens: record.promptTokens,
          completionTokens: record.completionTokens
        })
        const keys = filterKeys(record.vehicles)
        const id = storableText(record.id)
        const callerId = storableText(record.callerId)
        for (const c of keys.categories) category.run(id, callerId, createdAt, storableText(c))
        for (const m of keys.makes) make.run(id, callerId, createdAt, storableText(m))
        for (const p of keys.pairs) pair.run(id, callerId, createdAt, storableText(p.category), storableText(p.make))
        usage.run(Math.floor(createdAt / DAY_MS), callerId, storableText(record.model ?? ''), record.outcome === OK ? 0 : 1,
          record.cached ? 1 : 0, record.promptTokens, record.completionTokens,
          // A Global Batch's tokens also counted apart: usage prices them at the batch prices.
          record.batch === true ? record.promptTokens : 0, record.batch === true ? record.completionTokens : 0)
      }
      if (written.length > 0) for (const hook of hooks) hook(written)
      db.exec('COMMIT')
    } catch (err) {
      try { db.exec('ROLLBACK') } catch {}
      throw err
    }
  }
}
