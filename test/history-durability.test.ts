// What history owes a caller right after an answer, and what it must not keep for ever, on SQLite and
// PostgreSQL: read-your-writes (`identification(id)` and `deleteIdentification` sent right after the answer
// find the record still waiting in this instance's buffer, within a bound, and only the caller's own), and
// retention purging thumbnails by their own age (those whose record was never written have no other way out).
import t from 'tap'
import type { Test } from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { join } from 'node:path'
import pg from 'pg'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, tempDataDir } from './helper.ts'
import { identify, sendJson } from './support/http.ts'
import { jpeg } from './support/images.ts'
import { createDatabase, startPostgres } from './support/postgres.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import { openDatabase } from '../src/database/open.ts'
import { migrateToLatest } from '../src/migrations.ts'
import type { DatabaseTarget } from '../src/database/config.ts'
import { HistoryStore } from '../src/history/store.ts'
import { historyInternals, DURABLE_WAIT_MS } from '../src/history/plugin.ts'
import { record } from './support/history-records.ts'

const DAY = 86_400_000
const alice = newApiKey('alice')
const bob = newApiKey('bob')
const AUTH_ENV = { AUTH_MODE: 'apikey', API_KEY_HASHES: `${alice.entry},${bob.entry}` }
const as = (key: typeof alice): Record<string, string> => ({ 'x-api-key': key.key })

const ONE = 'query ($id: ID!) { identification(id: $id) { id callerId } }'
const DELETE = 'mutation ($id: ID!) { deleteIdentification(id: $id) }'

/** A database for one test: its environment, its target (to seed it), and a way to hold up the recorder's writes. */
interface TestDatabase {
  env: Record<string, string>
  target: DatabaseTarget
  /** Blocks history's record writes (another connection holds a lock they need) until the returned function is called. */
  holdWrites: () => Promise<() => Promise<void>>
  /** SQLite: the lock that holds the records up holds every write (a delete too); reads go on. */
  holdBlocksDeletes: boolean
}

const pgServer = await startPostgres(t)
let databases = 0

const kinds: Array<[string, () => Promise<TestDatabase>]> = [
  ['SQLite', async () => {
    const dir = tempDataDir()
    const file = join(dir, 'history.db')
    return {
      env: { DATA_DIR: dir },
      target: { dialect: 'sqlite', file },
      holdBlocksDeletes: true,
      holdWrites: async () => {
        const other = new DatabaseSync(file)
        other.exec('PRAGMA busy_timeout = 5000') // a thumbnail may be being written
        other.exec('BEGIN IMMEDIATE') // the write lock: the writer thread waits (busy_timeout)
        return async () => { other.exec('COMMIT'); other.close() }
      }
    }
  }],
  ['PostgreSQL', async () => {
    const url = await createDatabase(pgServer.url, `durability_${++databases}`)
    return {
      env: { DATABASE_URL: url },
      target: { dialect: 'postgres', url, poolSize: 2 },
      holdBlocksDeletes: false,
      holdWrites: async () => {
        const other = new pg.Client({ connectionString: url })
        await other.connect()
        // Every record's transaction upserts its day's usage: it waits here, its identification row uncommitted.
        await other.query('begin; lock table usage_daily in access exclusive mode')
        return async () => { await other.query('commit'); await other.end() }
      }
    }
  }]
]

async function identified (app: FastifyInstance, who: typeof alice, width: number): Promise<string> {
  const res = await identify(app, await jpeg(width, 48), { headers: as(who) })
  if (res.body.errors !== undefined) throw new Error(JSON.stringify(res.body.errors))
  return res.body.data.identifyVehicle.id
}

for (const [name, fresh] of kinds) {
  t.test(`${name}: read-your-writes: the answer's record is found and deleted right after the answer`, async (t: Test) => {
    const database = await fresh()
    const app = await buildTestApp(t, { env: { ...AUTH_ENV, ...database.env } })
    // Warm: the first write also waits for SQLite's writer thread to start, longer than the bound on a busy machine.
    await identified(app, alice, 59)
    await app.history!.flushed()
    for (let i = 0; i < 8; i++) {
      const id = await identified(app, alice, 60 + i)
      const found = await sendJson(app, { query: ONE, variables: { id } }, as(alice))
      t.equal(found.body.data?.identification?.id, id, `identification ${i}: found at once`, { body: found.body })
    }
    for (let i = 0; i < 8; i++) {
      const id = await identified(app, alice, 80 + i)
      const deleted = await sendJson(app, { query: DELETE, variables: { id } }, as(alice))
      t.equal(deleted.body.data?.deleteIdentification, true, `identification ${i}: deleted at once`)
      t.equal((await sendJson(app, { query: ONE, variables: { id } }, as(alice))).body.data?.identification, null, 'and gone')
    }
  })

  t.test(`${name}: while its write is held up, the caller's own record is waited for; another caller's is not`, async (t: Test) => {
    const database = await fresh()
    const app = await buildTestApp(t, { env: { ...AUTH_ENV, ...database.env } })
    await identified(app, alice, 50) // the schema and the connections warm
    await app.history!.flushed()

    let release = await database.holdWrites()
    const read = await identified(app, alice, 51)
    const doomed = await identified(app, alice, 52)
    t.ok(historyInternals(app.history!).recorder.pending >= 2, 'both records wait in the buffer')
    let started = performance.now()
    const bobReads = await sendJson(app, { query: ONE, variables: { id: read } }, as(bob))
    t.equal(bobReads.body.data?.identification, null, 'another caller cannot read it')
    t.ok(performance.now() - started < 1000, `and does not wait for it (${Math.round(performance.now() - started)} ms)`)
    if (!database.holdBlocksDeletes) {
      started = performance.now()
      const byBob = await sendJson(app, { query: DELETE, variables: { id: read } }, as(bob))
      t.equal(byBob.body.data?.deleteIdentification, false, 'nor delete it')
      t.ok(performance.now() - started < 1000, `without waiting for it (${Math.round(performance.now() - started)} ms)`)
    }
    setTimeout(() => { void release() }, 600)
    started = performance.now()
    const [found, deleted] = await Promise.all([
      sendJson(app, { query: ONE, variables: { id: read } }, as(alice)),
      sendJson(app, { query: DELETE, variables: { id: doomed } }, as(alice))
    ])
    const waited = performance.now() - started
    t.equal(found.body.data?.identification?.id, read, 'its owner reads it once written')
    t.equal(deleted.body.data?.deleteIdentification, true, 'and deletes the other')
    t.ok(waited >= 400, `they waited for the write (${Math.round(waited)} ms)`)

    // Held up for longer than the bound: the answer comes after DURABLE_WAIT_MS, not when the database lets go.
    release = await database.holdWrites()
    const late = await identified(app, alice, 53)
    started = performance.now()
    const unwritten = await sendJson(app, { query: ONE, variables: { id: late } }, as(alice))
    const bounded = performance.now() - started
    t.equal(unwritten.body.data?.identification, null, 'still unwritten: not found')
    t.ok(bounded >= DURABLE_WAIT_MS - 100 && bounded < DURABLE_WAIT_MS + 1500, `within the bound (${Math.round(bounded)} ms)`)
    await release()
    await app.history!.flushed()
    t.equal((await sendJson(app, { query: ONE, variables: { id: late } }, as(alice))).body.data?.identification?.id, late, 'written afterwards')
  })

  t.test(`${name}: retention purges thumbnails by their own age, those without a record too`, async (t: Test) => {
    const database = await fresh()
    const seeded = openDatabase(database.target)
    await migrateToLatest(seeded.db)
    const store = new HistoryStore(seeded.db)
    const jpegBytes = new Uint8Array([0xff, 0xd8, 0xff, 0xd9])
    // Orphans: their records were never written (dropped from a full buffer, lost in a crash).
    const oldOrphans = Array.from({ length: 1_205 }, (_, i) => ({ id: crypto.randomUUID(), at: new Date(Date.now() - 40 * DAY - i) }))
    const youngOrphan = crypto.randomUUID()
    const kept = record({ createdAt: new Date(Date.now() - 10 * DAY) })
    await store.insert(kept)
    await seeded.db.insertInto('thumbnails').values([
      ...oldOrphans.map(({ id, at }) => ({ identification_id: id, jpeg: jpegBytes, created_at: at.getTime() })),
      { identification_id: youngOrphan, jpeg: jpegBytes, created_at: Date.now() - 10 * DAY },
      { identification_id: kept.id, jpeg: jpegBytes, created_at: kept.createdAt.getTime() }
    ]).execute()
    await seeded.close()

    const app = await buildTestApp(t, { env: { ...database.env, HISTORY_RETENTION_DAYS: '30' } })
    const db = historyInternals(app.history!).store.db
    const left = async (): Promise<string[]> =>
      (await db.selectFrom('thumbnails').select('identification_id').execute()).map(row => row.identification_id)
    const deadline = Date.now() + 20_000
    while ((await left()).length > 2 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    t.strictSame((await left()).sort(), [youngOrphan, kept.id].sort(), 'every old thumbnail went (more than one batch); the young ones stay')
    t.ok(await historyInternals(app.history!).store.getThumbnail(kept.id), 'a kept record keeps its thumbnail')
  })
}
