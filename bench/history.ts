// Child process: history at scale (issue: "history and usage for the dashboard"). For SQLite (node:sqlite, a file in
// a temporary directory) and PostgreSQL (a throwaway loopback cluster from test/support/postgres.ts):
//   1. HistoryStore.insert on a realistic record (src/history/from-events.ts's shape): p50/p99; and
//      HistoryStore.insertMany in batches of BENCH_HISTORY_BATCH (16), as the recorder writes what waits: per record;
//   2. a 1,000,000-record history bulk-loaded (identifications + identification_categories + identification_makes +
//      identification_vehicles + usage_daily, the rows HistoryStore.insertMany writes, in transactions of 5,000),
//      same seeded data on both;
//   3. HistoryStore.list and HistoryStore.usage over it, p50/p95/p99 over BENCH_HISTORY_RUNS runs each;
//   4. the query plans of those queries (EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL),
//      their SQL captured from Kysely's query log.
// Replies one HistoryReply over IPC (or prints it when run by hand: node bench/history.ts).
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { Kysely, PostgresDialect, SqliteDialect, type LogEvent } from 'kysely'
import pg from 'pg'
import { openDatabase, type OpenedDatabase } from '../src/database/open.ts'
import { migrateToLatest } from '../src/migrations.ts'
import { openSqlite } from '../src/database/sqlite.ts'
import { HistoryStore, type ListFilter, type UsageGrouping } from '../src/history/store.ts'
import { filterKeys, OK, toRow, type HistoryRecord } from '../src/history/records.ts'
import type { HistoryTables } from '../src/history/tables.ts'
import { VEHICLE_CATEGORIES, type DetectedVehicle } from '../src/vision/answer-schema.ts'
import { startPostgres } from '../test/support/postgres.ts'
import { percentile } from './lib/stats.ts'
import type { HistoryDbResult, HistoryPlan, HistoryQueryResult, HistoryReply, LatencyStats } from './lib/protocol.ts'

const RECORDS = Number(process.env.BENCH_HISTORY_RECORDS ?? 1_000_000)
const RUNS = Number(process.env.BENCH_HISTORY_RUNS ?? 200)
const INSERTS = Number(process.env.BENCH_HISTORY_INSERTS ?? 1000)
/** insertMany's batch size measured besides single inserts (the recorder writes up to 64 waiting records at once). */
const WRITE_BATCH = Number(process.env.BENCH_HISTORY_BATCH ?? 16)
/** Batches timed per measurement. */
const BATCHES = Number(process.env.BENCH_HISTORY_BATCHES ?? 300)
const BATCH = 5000
const DAY_MS = 86_400_000
const SPAN_DAYS = 365
// "Now" for the data: a fixed instant, so both databases hold the same rows and the windows are the same.
const NOW = Date.UTC(2026, 11, 1, 12, 34, 56, 789)

// ---------------------------------------------------------------- seeded, skewed data

function xorshift (seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0
    return s / 4294967296
  }
}

function picker<T> (items: ReadonlyArray<readonly [T, number]>): (r: number) => T {
  const total = items.reduce((n, [, w]) => n + w, 0)
  const cumulative: number[] = []
  let acc = 0
  for (const [, w] of items) { acc += w / total; cumulative.push(acc) }
  return (r) => {
    let lo = 0
    let hi = cumulative.length - 1
    while (lo < hi) { const mid = (lo + hi) >> 1; if (r < (cumulative[mid] as number)) hi = mid; else lo = mid + 1 }
    return (items[lo] as readonly [T, number])[0]
  }
}

/** Category shares (percent): tractors most common, irrigation systems, cotton and cane harvesters rare. */
const CATEGORY_WEIGHTS: Record<string, number> = {
  TRACTOR: 30,
  COMBINE_HARVESTER: 8,
  TILLAGE_IMPLEMENT: 7,
  PLANTER_SEEDER: 6,
  BALER_HAY_TOOL: 6,
  TRAILER_GRAIN_CART: 6,
  LOADER_TELEHANDLER: 5,
  SELF_PROPELLED_SPRAYER: 5,
  TRAILED_SPRAYER: 4,
  FERTILIZER_SPREADER: 4,
  UTILITY_VEHICLE: 4,
  FORAGE_HARVESTER: 3,
  SLURRY_MANURE_APPLICATOR: 2,
  WINDROWER: 2,
  ROOT_CROP_HARVESTER: 2,
  FEEDER_MIXER: 2,
  COTTON_HARVESTER: 1,
  SUGARCANE_HARVESTER: 1,
  IRRIGATION_SYSTEM: 1,
  OTHER: 1
}
const MACHINES = new Set(['TRACTOR', 'COMBINE_HARVESTER', 'FORAGE_HARVESTER', 'SELF_PROPELLED_SPRAYER', 'WINDROWER', 'COTTON_HARVESTER',
  'SUGARCANE_HARVESTER', 'LOADER_TELEHANDLER', 'UTILITY_VEHICLE'])
const MAKES = ['John Deere', 'Case IH', 'New Holland', 'Claas', 'Fendt', 'Massey Ferguson', 'Kubota', 'Valtra', 'Deutz-Fahr', 'JCB',
  'Krone', 'Kuhn', 'Amazone', 'Lemken', 'Horsch', 'Väderstad', 'Pöttinger', 'Kverneland', 'Manitou', 'Merlo', 'Same', 'Landini',
  'McCormick', 'Steyr', 'Zetor', 'Bobcat', 'Grimme', 'Hardi', 'Joskin', 'Bergmann']
const CALLERS = Array.from({ length: 50 }, (_, i) => `entra-app-${String(i).padStart(2, '0')}-${'0123456789abcdef'.repeat(2).slice(i % 16, i % 16 + 12)}`)
const FAILURES = ['UPSTREAM_UNAVAILABLE', 'UPSTREAM_TIMEOUT', 'BAD_USER_INPUT', 'UPSTREAM_RATE_LIMITED', 'CONTENT_FILTERED']
const pickCategory = picker(VEHICLE_CATEGORIES.map(c => [c, CATEGORY_WEIGHTS[c] ?? 1] as const))
// Makes and callers: Zipf-like (the n-th is 1/n as common as the first).
const pickMake = picker(MAKES.map((m, i) => [m, 1 / (i + 1)] as const))
const pickCaller = picker(CALLERS.map((c, i) => [c, 1 / (i + 1)] as const))
const pickFailure = picker(FAILURES.map((f, i) => [f, 1 / (i + 1)] as const))

function hex (rand: () => number, chars: number): string {
  let s = ''
  while (s.length < chars) s += Math.floor(rand() * 4294967296).toString(16).padStart(8, '0')
  return s.slice(0, chars)
}

/** One identification as the recorder would write it, at `createdAt`. */
function makeRecord (rand: () => number, createdAt: number): HistoryRecord {
  const callerId = pickCaller(rand())
  const ok = rand() >= 0.07
  const cached = ok && rand() < 0.05
  const count = !ok ? 0 : rand() < 0.75 ? 1 : rand() < 0.8 ? 2 : 3
  const vehicles: DetectedVehicle[] = []
  for (let i = 0; i < count; i++) {
    const category = pickCategory(rand()) as DetectedVehicle['category']
    const make = rand() < 0.15 ? null : pickMake(rand())
    vehicles.push({
      category,
      kind: MACHINES.has(category) ? 'MACHINE' : 'IMPLEMENT',
      make,
      model: make === null || rand() < 0.3 ? null : `${String.fromCharCode(65 + Math.floor(rand() * 26))}${Math.floor(rand() * 900 + 100)}`,
      confidence: rand() < 0.5 ? 'HIGH' : rand() < 0.7 ? 'MEDIUM' : 'LOW',
      evidence: ['green and yellow livery on the bonnet', `${make ?? 'no'} lettering on the side panel`, 'four-post cab with a roof beacon']
    } as DetectedVehicle)
  }
  const first = vehicles[0]
  const sha256 = hex(rand, 64)
  return {
    id: randomUUID(),
    callerId,
    callerKind: 'entra-app',
    createdAt: new Date(createdAt),
    outcome: ok ? OK : pickFailure(rand()),
    cached,
    backendName: null,
    language: rand() < 0.6 ? 'en' : 'de',
    detail: 'auto',
    backend: 'AZURE_OPENAI',
    model: ok ? 'gpt-4o-2024-11-20' : null,
    answer: first === undefined
      ? (ok ? 'No agricultural vehicle in this photo: a farmyard with a barn and a hay stack.' : null)
      : `A ${first.category.toLowerCase().replaceAll('_', ' ')} in a field: ${first.make ?? 'make unknown'} ${first.model ?? ''}, ` +
        'told by its livery, the lettering on the bonnet and the shape of its cab; a second machine is partly hidden behind it.',
    vehicles,
    image: {
      sha256,
      mimeType: 'image/jpeg',
      bytes: 2_500_000 + Math.floor(rand() * 6_000_000),
      width: 4000,
      height: 3000,
      sentMimeType: 'image/jpeg',
      sentBytes: 80_000 + Math.floor(rand() * 40_000),
      sentWidth: 1024,
      sentHeight: 768,
      estimatedImageTokens: 765
    },
    promptTokens: ok && !cached ? 1100 + Math.floor(rand() * 300) : 0,
    completionTokens: ok && !cached ? 120 + Math.floor(rand() * 200) : 0,
    durationMs: cached ? 8 + Math.floor(rand() * 20) : 1500 + Math.floor(rand() * 3000),
    cacheKey: ok && !cached ? hex(rand, 64) : null
  }
}

const ID_COLUMNS = ['id', 'caller_id', 'caller_kind', 'created_at', 'outcome', 'cached', 'language', 'detail', 'backend', 'model', 'answer',
  'vehicles', 'image', 'image_sha256', 'prompt_tokens', 'completion_tokens', 'duration_ms', 'cache_key', 'has_thumbnail'] as const
const KEYED_TABLES = ['identifications', 'identification_categories', 'identification_makes', 'identification_vehicles']
// The inserts measured before the load wrote today's usage already: add to it.
const USAGE_UPSERT = ' ON CONFLICT (day, caller_id, model) DO UPDATE SET identifications = usage_daily.identifications + excluded.identifications, failed = usage_daily.failed + excluded.failed, cached = usage_daily.cached + excluded.cached, prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens'
const PG_TYPES: Record<string, string> = { created_at: 'bigint', cached: 'int', prompt_tokens: 'int', completion_tokens: 'int', duration_ms: 'int', has_thumbnail: 'int' }

interface Batch {
  identifications: unknown[][]
  categories: Array<[string, string, string, number]>
  makes: Array<[string, string, string, number]>
  /** identification_vehicles: (id, category, make_key, caller_id, created_at), one per distinct (category, make). */
  vehicles: Array<[string, string, string, string, number]>
}

interface UsageCell {
  day: number, caller: string, model: string, n: number, failed: number, cached: number, prompt: number, completion: number
}

/** The seeded history, oldest first (as it was written), in batches; usage_daily's totals gathered on the way. */
export function * history (usage: Map<string, UsageCell>): Generator<Batch> {
  const rand = xorshift(0xa9e1)
  const start = NOW - SPAN_DAYS * DAY_MS
  const step = (SPAN_DAYS * DAY_MS) / RECORDS
  let batch: Batch = { identifications: [], categories: [], makes: [], vehicles: [] }
  for (let i = 0; i < RECORDS; i++) {
    const createdAt = Math.floor(start + i * step + rand() * step)
    const record = makeRecord(rand, createdAt)
    const row = toRow(record)
    batch.identifications.push(ID_COLUMNS.map(c => row[c]))
    const { categories, makes, pairs } = filterKeys(record.vehicles)
    for (const category of categories) batch.categories.push([row.id, category, row.caller_id, row.created_at])
    for (const make of makes) batch.makes.push([row.id, make, row.caller_id, row.created_at])
    for (const { category, make } of pairs) batch.vehicles.push([row.id, category, make, row.caller_id, row.created_at])
    const day = Math.floor(createdAt / DAY_MS)
    const key = `${day}|${row.caller_id}|${row.model ?? ''}`
    const cell = usage.get(key) ?? { day, caller: row.caller_id, model: row.model ?? '', n: 0, failed: 0, cached: 0, prompt: 0, completion: 0 }
    cell.n++
    cell.failed += record.outcome === OK ? 0 : 1
    cell.cached += row.cached
    cell.prompt += row.prompt_tokens
    cell.completion += row.completion_tokens
    usage.set(key, cell)
    if (batch.identifications.length === BATCH) { yield batch; batch = { identifications: [], categories: [], makes: [], vehicles: [] } }
  }
  if (batch.identifications.length > 0) yield batch
}

// ---------------------------------------------------------------- bulk loads

interface Counts { identifications: number, categories: number, makes: number, vehicles: number, usageDaily: number }

function loadSqlite (file: string): Counts {
  const raw = new DatabaseSync(file)
  raw.exec('PRAGMA journal_mode = WAL')
  raw.exec('PRAGMA synchronous = OFF') // for the load only; the store's own connection is the production one
  raw.exec('PRAGMA cache_size = -262144')
  // The migration's indexes are dropped for the load and made again after it, as they were (one sort each instead of a
  // million B-tree inserts); the primary keys stay.
  const indexes = raw.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (${KEYED_TABLES.map(t => `'${t}'`).join(', ')})`)
    .all() as Array<{ name: string, sql: string }>
  for (const { name } of indexes) raw.exec(`DROP INDEX ${name}`)
  // Many rows a statement (fewer calls into SQLite); the batch's remainder one statement each.
  const ROWS = 50
  const statement = (head: string, width: number, rows: number) =>
    raw.prepare(`${head} VALUES ${Array.from({ length: rows }, () => `(${Array.from({ length: width }, () => '?').join(', ')})`).join(', ')}`)
  const idHead = `INSERT INTO identifications (${ID_COLUMNS.join(', ')})`
  const categoryHead = 'INSERT INTO identification_categories (identification_id, category, caller_id, created_at)'
  const makeHead = 'INSERT INTO identification_makes (identification_id, make_key, caller_id, created_at)'
  const vehicleHead = 'INSERT INTO identification_vehicles (identification_id, category, make_key, caller_id, created_at)'
  const many = {
    id: statement(idHead, ID_COLUMNS.length, ROWS),
    category: statement(categoryHead, 4, ROWS),
    make: statement(makeHead, 4, ROWS),
    vehicle: statement(vehicleHead, 5, ROWS)
  }
  const one = {
    id: statement(idHead, ID_COLUMNS.length, 1),
    category: statement(categoryHead, 4, 1),
    make: statement(makeHead, 4, 1),
    vehicle: statement(vehicleHead, 5, 1)
  }
  type V = Parameters<typeof one.id.run>
  const insertAll = (rows: unknown[][], key: keyof typeof many): void => {
    let i = 0
    for (; i + ROWS <= rows.length; i += ROWS) many[key].run(...rows.slice(i, i + ROWS).flat() as V)
    for (; i < rows.length; i++) one[key].run(...rows[i] as V)
  }
  const counts: Counts = { identifications: 0, categories: 0, makes: 0, vehicles: 0, usageDaily: 0 }
  const usage = new Map<string, UsageCell>()
  for (const batch of history(usage)) {
    raw.exec('BEGIN')
    insertAll(batch.identifications, 'id')
    insertAll(batch.categories, 'category')
    insertAll(batch.makes, 'make')
    insertAll(batch.vehicles, 'vehicle')
    raw.exec('COMMIT')
    counts.identifications += batch.identifications.length
    counts.categories += batch.categories.length
    counts.makes += batch.makes.length
    counts.vehicles += batch.vehicles.length
  }
  const insertUsage = raw.prepare('INSERT INTO usage_daily (day, caller_id, model, identifications, failed, cached, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)' + USAGE_UPSERT)
  raw.exec('BEGIN')
  for (const u of usage.values()) insertUsage.run(u.day, u.caller, u.model, u.n, u.failed, u.cached, u.prompt, u.completion)
  raw.exec('COMMIT')
  counts.usageDaily = usage.size
  for (const index of indexes) raw.exec(index.sql)
  raw.exec('PRAGMA wal_checkpoint(TRUNCATE)')
  raw.close()
  return counts
}

async function loadPostgres (url: string): Promise<Counts> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const unnest = (columns: readonly string[], types: Record<string, string>) =>
      `SELECT * FROM unnest(${columns.map((c, i) => `$${i + 1}::${types[c] ?? 'text'}[]`).join(', ')})`
    const idSql = `INSERT INTO identifications (${ID_COLUMNS.join(', ')}) ${unnest(ID_COLUMNS, PG_TYPES)}`
    const keySql = (table: string, column: string) =>
      `INSERT INTO ${table} (identification_id, ${column}, caller_id, created_at) ${unnest(['i', 'k', 'c', 'created_at'], PG_TYPES)}`
    const vehicleSql = 'INSERT INTO identification_vehicles (identification_id, category, make_key, caller_id, created_at) ' +
      unnest(['i', 'c', 'k', 'o', 'created_at'], PG_TYPES)
    const columnsOf = (rows: unknown[][], width: number): unknown[][] => Array.from({ length: width }, (_, i) => rows.map(r => r[i]))
    // The migration's indexes, primary keys and foreign keys are dropped for the load and made again after it, as
    // they were (an index build is one sort; a million B-tree inserts and FK checks are not).
    const tables = KEYED_TABLES.map(t => `'${t}'`).join(', ')
    const constraints = (await client.query(`SELECT conrelid::regclass::text AS tbl, conname, contype, pg_get_constraintdef(oid) AS def
      FROM pg_constraint WHERE conrelid::regclass::text IN (${tables}) AND contype IN ('p', 'f') ORDER BY contype`)).rows as Array<{ tbl: string, conname: string, contype: string, def: string }>
    const indexes = (await client.query(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN (${tables})
      AND indexname NOT IN (SELECT conname FROM pg_constraint)`)).rows as Array<{ indexname: string, indexdef: string }>
    for (const c of constraints) await client.query(`ALTER TABLE ${c.tbl} DROP CONSTRAINT ${c.conname}`) // foreign keys first
    for (const i of indexes) await client.query(`DROP INDEX ${i.indexname}`)
    const counts: Counts = { identifications: 0, categories: 0, makes: 0, vehicles: 0, usageDaily: 0 }
    const usage = new Map<string, UsageCell>()
    let pending: Promise<unknown> = Promise.resolve()
    for (const batch of history(usage)) {
      await pending // the next batch is made while the server writes this one
      pending = Promise.all([
        client.query('BEGIN'),
        client.query(idSql, columnsOf(batch.identifications, ID_COLUMNS.length)),
        client.query(keySql('identification_categories', 'category'), columnsOf(batch.categories, 4)),
        client.query(keySql('identification_makes', 'make_key'), columnsOf(batch.makes, 4)),
        client.query(vehicleSql, columnsOf(batch.vehicles, 5)),
        client.query('COMMIT')
      ])
      counts.identifications += batch.identifications.length
      counts.categories += batch.categories.length
      counts.makes += batch.makes.length
      counts.vehicles += batch.vehicles.length
    }
    await pending
    await client.query("SET maintenance_work_mem = '512MB'")
    for (const c of [...constraints].reverse()) await client.query(`ALTER TABLE ${c.tbl} ADD CONSTRAINT ${c.conname} ${c.def}`) // primary keys first
    for (const i of indexes) await client.query(i.indexdef)
    const cells = [...usage.values()]
    await client.query(
      'INSERT INTO usage_daily (day, caller_id, model, identifications, failed, cached, prompt_tokens, completion_tokens) ' +
      'SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])' + USAGE_UPSERT,
      [cells.map(u => u.day), cells.map(u => u.caller), cells.map(u => u.model), cells.map(u => u.n), cells.map(u => u.failed),
        cells.map(u => u.cached), cells.map(u => u.prompt), cells.map(u => u.completion)])
    counts.usageDaily = cells.length
    await client.query('ANALYZE')
    return counts
  } finally {
    await client.end()
  }
}

// ---------------------------------------------------------------- measurements

function stats (samples: number[]): LatencyStats {
  const at = (p: number): number => percentile(samples, p)
  return { runs: samples.length, p50: at(50), p95: at(95), p99: at(99), max: Math.max(...samples) }
}

async function measureInserts (store: HistoryStore, count: number): Promise<LatencyStats> {
  const rand = xorshift(0x1e5e77)
  for (let i = 0; i < 50; i++) await store.insert(makeOk(rand))
  const samples: number[] = []
  for (let i = 0; i < count; i++) {
    const record = makeOk(rand)
    const t0 = performance.now()
    await store.insert(record)
    samples.push(performance.now() - t0)
  }
  return stats(samples)
}

/**
 * HistoryStore.insertMany as the recorder calls it with `size` records waiting: `batches` batches timed one at a
 * time. Per record: each batch's time ÷ its size (p50/p99 over the batches); per batch: the whole call.
 */
async function measureBatches (
  store: HistoryStore, size: number, batches: number
): Promise<{ perRecord: LatencyStats, perBatch: LatencyStats }> {
  const rand = xorshift(0xba7c4 + size)
  const batch = (): HistoryRecord[] => Array.from({ length: size }, () => makeOk(rand))
  for (let i = 0; i < 10; i++) await store.insertMany(batch())
  const samples: number[] = []
  for (let i = 0; i < batches; i++) {
    const records = batch()
    const t0 = performance.now()
    await store.insertMany(records)
    samples.push(performance.now() - t0)
  }
  return { perRecord: stats(samples.map(s => s / size)), perBatch: stats(samples) }
}

type InsertRow = HistoryDbResult['inserts'][number]

/** The single inserts and the insertMany batches on one database state, as result rows. */
async function measureWrites (store: HistoryStore, label: string, target: boolean): Promise<InsertRow[]> {
  const single = await measureInserts(store, INSERTS)
  const { perRecord, perBatch } = await measureBatches(store, WRITE_BATCH, BATCHES)
  return [
    { label: `${label}: insert(record) = insertMany([record])`, batch: 1, ...single, perBatch: single, target },
    { label: `${label}: insertMany of ${WRITE_BATCH}`, batch: WRITE_BATCH, ...perRecord, perBatch }
  ]
}

function describe (rows: InsertRow[]): string {
  return rows.map(r => `batch ${r.batch}: p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms per record`).join('; ')
}

/** A successful identification of 1–3 vehicles, made now (the common case: 3–4 rows and a usage upsert). */
function makeOk (rand: () => number): HistoryRecord {
  for (;;) {
    const record = makeRecord(rand, Date.now())
    if (record.outcome === OK && record.vehicles.length > 0) return record
  }
}

interface Case {
  name: string
  kind: 'list' | 'usage'
  /** The run-th call of this case (parameters vary from run to run, the same on both databases). */
  run: (store: HistoryStore, i: number) => Promise<number>
  /** Prepares what the runs need (cursors for deep pages). */
  prepare?: (store: HistoryStore) => Promise<void>
}

const HEAVY_CALLER = CALLERS[0] as string
const TYPICAL_CALLER = CALLERS[9] as string
const WINDOWS = 20

/** The i-th 30-day window: ends between 1 and 330 days ago, at an arbitrary time of day (not aligned to midnight). */
function window (i: number): { from: Date, to: Date } {
  const end = NOW - DAY_MS - Math.floor(((i % WINDOWS) * 329 * DAY_MS) / (WINDOWS - 1)) - (i % 7) * 3_600_017
  return { from: new Date(end - 30 * DAY_MS), to: new Date(end) }
}

function listCase (name: string, filter: (i: number) => ListFilter, pages = 1): Case {
  const cursors: Array<{ createdAt: number, id: string } | null> = []
  return {
    name,
    kind: 'list',
    prepare: pages === 1
      ? undefined
      : async (store) => {
        for (let w = 0; w < WINDOWS; w++) {
          let after: { createdAt: number, id: string } | null = null
          for (let p = 1; p < pages; p++) {
            const { rows } = await store.list(filter(w), 50, after)
            const last = rows.at(-1)
            after = last === undefined ? null : { createdAt: last.createdAt.getTime(), id: last.id }
          }
          cursors[w] = after
        }
      },
    run: async (store, i) => (await store.list(filter(i), 50, pages === 1 ? null : cursors[i % WINDOWS] ?? null)).rows.length
  }
}

function usageCase (name: string, callerId: string | null, groupBy: UsageGrouping): Case {
  return {
    name,
    kind: 'usage',
    run: async (store, i) => { const { from, to } = window(i); return (await store.usage(from, to, callerId, groupBy)).length }
  }
}

const CASES: Case[] = [
  listCase('list: ReadAll, category TRACTOR (30 %), 30-day window, first 50', i => ({ category: 'TRACTOR', ...window(i), callerId: null })),
  listCase('list: ReadAll, category IRRIGATION_SYSTEM (1 %), 30-day window, first 50', i => ({ category: 'IRRIGATION_SYSTEM', ...window(i), callerId: null })),
  listCase('list: one caller (2 % of records), category TRACTOR, 30-day window, first 50', i => ({ category: 'TRACTOR', ...window(i), callerId: TYPICAL_CALLER })),
  listCase('list: ReadAll, category TRACTOR, 30-day window, page 20 (after the 19th page\'s endCursor)', i => ({ category: 'TRACTOR', ...window(i), callerId: null }), 20),
  listCase('list: ReadAll, no filter, first 50', () => ({ callerId: null })),
  listCase('list: one caller (2 %), no filter, first 50', () => ({ callerId: TYPICAL_CALLER })),
  listCase('list: ReadAll, 30-day window only, first 50', i => ({ ...window(i), callerId: null })),
  listCase('list: ReadAll, make "fendt", 30-day window, first 50', i => ({ make: 'fendt', ...window(i), callerId: null })),
  listCase('list: ReadAll, category TRACTOR + make "bergmann" (rarest make), 30-day window, first 50', i => ({ category: 'TRACTOR', make: 'bergmann', ...window(i), callerId: null })),
  usageCase('usage: ReadAll, 30 days, by DAY', null, 'DAY'),
  usageCase('usage: heaviest caller (22 % of records), 30 days, by DAY', HEAVY_CALLER, 'DAY'),
  usageCase('usage: ReadAll, 30 days, by CALLER', null, 'CALLER'),
  usageCase('usage: one caller (2 %), 30 days, by CALLER', TYPICAL_CALLER, 'CALLER')
]
/** Cases whose plans are shown (every distinct query shape above). */
const PLANNED = new Set(CASES.map(c => c.name))

async function measureQueries (store: HistoryStore): Promise<HistoryQueryResult[]> {
  const results: HistoryQueryResult[] = []
  for (const c of CASES) {
    await c.prepare?.(store)
    for (let i = 0; i < 10; i++) await c.run(store, i)
    const samples: number[] = []
    let rows = 0
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now()
      rows += await c.run(store, i)
      samples.push(performance.now() - t0)
    }
    results.push({ name: c.name, kind: c.kind, rowsPerRun: rows / RUNS, ...stats(samples) })
  }
  return results
}

/** Runs each case once through a Kysely that logs its SQL; returns the queries per case (parameters included). */
type Captured = Array<{ name: string, queries: Array<{ sql: string, parameters: readonly unknown[] }> }>

async function captureQueries (db: Kysely<HistoryTables>, log: LogEvent[]): Promise<Captured> {
  const store = new HistoryStore(db)
  const out = []
  for (const c of CASES) {
    if (!PLANNED.has(c.name)) continue
    await c.prepare?.(store)
    log.length = 0
    await c.run(store, 3)
    out.push({ name: c.name, queries: log.map(e => ({ sql: e.query.sql, parameters: e.query.parameters })) })
  }
  return out
}

function sqlitePlans (file: string, captured: Captured): HistoryPlan[] {
  const raw = new DatabaseSync(file, { readOnly: true })
  try {
    return captured.map(({ name, queries }) => ({
      name,
      queries: queries.map(({ sql, parameters }) => {
        const rows = raw.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...parameters as never[]) as Array<{ id: number, parent: number, detail: string }>
        const depth = new Map<number, number>([[0, -1]])
        const lines = rows.map(r => { const d = (depth.get(r.parent) ?? -1) + 1; depth.set(r.id, d); return `${'  '.repeat(d)}${r.detail}` })
        return { sql: inline(sql, parameters), plan: lines.join('\n') }
      })
    }))
  } finally {
    raw.close()
  }
}

async function postgresPlans (pool: pg.Pool, captured: Captured): Promise<HistoryPlan[]> {
  const out: HistoryPlan[] = []
  for (const { name, queries } of captured) {
    const planned = []
    for (const { sql, parameters } of queries) {
      const result = await pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, parameters as unknown[])
      planned.push({ sql: inline(sql, parameters), plan: result.rows.map(r => (r as Record<string, string>)['QUERY PLAN']).join('\n') })
    }
    out.push({ name, queries: planned })
  }
  return out
}

/** The SQL with its parameters written in, for reading (long IN lists shortened). */
function inline (sql: string, parameters: readonly unknown[]): string {
  let i = 0
  const literal = (v: unknown): string => typeof v === 'string' ? `'${v.replaceAll("'", "''")}'` : String(v)
  const text = sql.replace(/\$(\d+)|\?/g, (m, n: string | undefined) => literal(parameters[n === undefined ? i++ : Number(n) - 1]))
  return text.replace(/in \(((?:'[^']*', ){3})(?:'[^']*', )+('[^']*')\)/g, 'in ($1…, $2)')
}

// ---------------------------------------------------------------- per database

async function benchSqlite (): Promise<HistoryDbResult> {
  const dir = mkdtempSync(join(tmpdir(), 'agrivision-bench-history-'))
  const file = join(dir, 'history.db')
  try {
    let opened: OpenedDatabase<HistoryTables> = openDatabase<HistoryTables>({ dialect: 'sqlite', file })
    await migrateToLatest(opened.db)
    const insertEmpty = await measureWrites(new HistoryStore(opened.db), 'empty database', false)
    await opened.close()
    log(`sqlite: inserts on an empty database: ${describe(insertEmpty)}; loading ${RECORDS} records`)
    const t0 = performance.now()
    const counts = loadSqlite(file)
    const loadSec = (performance.now() - t0) / 1000
    log(`sqlite: loaded in ${loadSec.toFixed(1)} s (${JSON.stringify(counts)}); ${(statSync(file).size / 2 ** 20).toFixed(0)} MiB`)
    opened = openDatabase({ dialect: 'sqlite', file })
    const store = new HistoryStore(opened.db)
    const insertLoaded = await measureWrites(store, `over ${RECORDS.toLocaleString('en')} records`, true)
    log(`sqlite: inserts over ${RECORDS} records: ${describe(insertLoaded)}`)
    const queries = await measureQueries(store)
    for (const q of queries) log(`sqlite: ${q.name}: p50 ${q.p50.toFixed(2)} ms, p95 ${q.p95.toFixed(2)} ms`)
    await opened.close()
    const events: LogEvent[] = []
    const dialect = new SqliteDialect({ database: openSqlite(file).database })
    const capture = new Kysely<HistoryTables>({ dialect, log: e => { events.push(e) } })
    const captured = await captureQueries(capture, events)
    await capture.destroy()
    return {
      dialect: 'sqlite',
      setup: 'node:sqlite, the store\'s own connection (src/history/sqlite.ts: WAL, synchronous=NORMAL); a file in a temporary directory; no ANALYZE (the service never runs it)',
      loadSec,
      fileMiB: statSync(file).size / 2 ** 20,
      counts,
      inserts: [...insertEmpty, ...insertLoaded],
      queries,
      plans: sqlitePlans(file, captured)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function benchPostgres (): Promise<HistoryDbResult> {
  const server = await startPostgres()
  try {
    const admin = new pg.Pool({ connectionString: server.url, max: 2 })
    admin.on('error', () => {})
    const version = (await admin.query('SHOW server_version')).rows[0].server_version as string
    let opened = openDatabase<HistoryTables>({ dialect: 'postgres', url: server.url, poolSize: 10 })
    await migrateToLatest(opened.db)
    const insertEmpty = await measureWrites(new HistoryStore(opened.db), 'empty database, fsync off', false)
    await opened.close()
    log(`postgres ${version}: inserts on an empty database: ${describe(insertEmpty)}; loading ${RECORDS} records`)
    const t0 = performance.now()
    const counts = await loadPostgres(server.url)
    const loadSec = (performance.now() - t0) / 1000
    log(`postgres: loaded and analyzed in ${loadSec.toFixed(1)} s (${JSON.stringify(counts)})`)
    opened = openDatabase({ dialect: 'postgres', url: server.url, poolSize: 10 })
    const store = new HistoryStore(opened.db)
    const insertLoaded = await measureWrites(store, `over ${RECORDS.toLocaleString('en')} records, fsync off`, false)
    log(`postgres: inserts over ${RECORDS} records (fsync off): ${describe(insertLoaded)}`)
    // The test cluster runs without fsync; a production server commits durably: measure that too.
    await admin.query('ALTER SYSTEM SET fsync = on')
    await admin.query('ALTER SYSTEM SET synchronous_commit = on')
    await admin.query('ALTER SYSTEM SET full_page_writes = on')
    await admin.query('SELECT pg_reload_conf()')
    await admin.query('CHECKPOINT')
    await opened.close()
    opened = openDatabase({ dialect: 'postgres', url: server.url, poolSize: 10 })
    const durableStore = new HistoryStore(opened.db)
    const insertDurable = await measureWrites(durableStore, `over ${RECORDS.toLocaleString('en')} records, fsync + synchronous_commit on`, true)
    log(`postgres: inserts over ${RECORDS} records (fsync on, synchronous_commit on): ${describe(insertDurable)}`)
    const queries = await measureQueries(durableStore)
    for (const q of queries) log(`postgres: ${q.name}: p50 ${q.p50.toFixed(2)} ms, p95 ${q.p95.toFixed(2)} ms`)
    await opened.close()
    const events: LogEvent[] = []
    // Bigints read as numbers, as src/history/database.ts's pool does.
    const pool = new pg.Pool({
      connectionString: server.url,
      max: 2,
      types: { getTypeParser: (oid: number, format?: string) => oid === 20 || oid === 1700 ? Number : pg.types.getTypeParser(oid, format as 'text') }
    })
    pool.on('error', () => {})
    const capture = new Kysely<HistoryTables>({ dialect: new PostgresDialect({ pool }), log: e => { events.push(e) } })
    const captured = await captureQueries(capture, events)
    const plans = await postgresPlans(admin, captured)
    await capture.destroy()
    const size = Number((await admin.query('SELECT pg_database_size(current_database()) AS s')).rows[0].s) / 2 ** 20
    await admin.end()
    return {
      dialect: 'postgres',
      setup: `PostgreSQL ${version}, a throwaway cluster on 127.0.0.1 (test/support/postgres.ts; loaded with fsync off, then fsync, synchronous_commit and full_page_writes on for the measurements), pool of 10 (src/history/database.ts), ANALYZE after the load`,
      loadSec,
      fileMiB: size,
      counts,
      inserts: [...insertEmpty, ...insertLoaded, ...insertDurable],
      queries,
      plans
    }
  } finally {
    await server.stop()
  }
}

const began = performance.now()
function log (line: string): void {
  process.stdout.write(`[history ${((performance.now() - began) / 1000).toFixed(0).padStart(3)} s] ${line}\n`)
}

async function reply (message: HistoryReply): Promise<void> {
  if (process.send) await new Promise(resolve => process.send?.(message, undefined, {}, resolve))
  else process.stdout.write(`${JSON.stringify(message, null, 2)}\n`)
}

try {
  const which = (process.env.BENCH_HISTORY_DATABASES ?? 'sqlite,postgres').split(',')
  const databases: HistoryDbResult[] = []
  if (which.includes('sqlite')) databases.push(await benchSqlite())
  if (which.includes('postgres')) databases.push(await benchPostgres())
  await reply({ type: 'result', records: RECORDS, runs: RUNS, databases })
} catch (err) {
  await reply({ type: 'error', message: String((err as Error)?.stack ?? err) })
}
process.exit(0)
