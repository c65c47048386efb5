// Bulk jobs under kill -9, on SQLite (test/bulk-durability*.test.ts) and PostgreSQL (-postgres.test.ts): the real
// server process (spawnServer) against the loopback FakeAzure in the test process, killed at a chosen point, then
// started again on the same DATA_DIR (and database). Each case checks what the issue asks: the job completes,
// every photo has exactly one identification (`count(*) ... group by id` on the database itself), no custom_id was
// submitted twice, nothing is left under DATA_DIR/bulk, and the batch's files are deleted at Azure.
import type { Test } from 'tap'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import pg from 'pg'
import { FakeAzure } from './fake-azure.ts'
import { jpeg, png } from './images.ts'
import { makeZip } from './zip.ts'
import { createBody, JOB } from './bulk.ts'
import { spawnServer, stopServer, type ServerProcess } from './server-process.ts'
import { tempDataDir } from '../helper.ts'

export const BATCH_DEPLOYMENT = 'gpt-4o-batch'
const FINISHED = ['COMPLETED', 'FAILED', 'CANCELLED']

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** Where a case keeps its state across processes: a DATA_DIR, and a database (SQLite in it, or DATABASE_URL's). */
export interface Storage {
  env: Record<string, string>
  dataDir: string
  /** A query on the history database, `$1`-style parameters (rows as plain objects). */
  query: (sql: string, params?: unknown[]) => Promise<Array<Record<string, unknown>>>
  /**
   * After a kill, before the restart: the killed process's lease on the job is let pass. SQLite: nothing to do (one
   * process per file: the restarted server frees every lease at start-up). PostgreSQL: instances share the database,
   * so a dead one's lease holds for its 60 s (worker.ts LEASE_MS); moving it into the past is what that wait does.
   */
  leasePassed: (jobId: string) => Promise<void>
}

/** SQLite: history.db in a fresh DATA_DIR, opened read-only for each query (the server holds it between). */
export function sqliteStorage (): Storage {
  const dataDir = tempDataDir()
  return {
    env: { DATA_DIR: dataDir },
    dataDir,
    async query (sql, params = []) {
      const db = new DatabaseSync(join(dataDir, 'history.db'), { readOnly: true })
      try {
        return db.prepare(sql.replace(/\$\d+/g, '?')).all(...params as any[]) as Array<Record<string, unknown>>
      } finally {
        db.close()
      }
    },
    leasePassed: async () => {}
  }
}

/** PostgreSQL: the database at `url` (made for this case), and a fresh DATA_DIR for the bulk files. */
export function postgresStorage (url: string): Storage {
  const dataDir = tempDataDir()
  const query = async (sql: string, params: unknown[] = []): Promise<Array<Record<string, unknown>>> => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return (await client.query(sql, params)).rows
    } finally {
      await client.end()
    }
  }
  return {
    env: { DATA_DIR: dataDir, DATABASE_URL: url },
    dataDir,
    query,
    async leasePassed (jobId) {
      await query('update bulk_jobs set lease_until = $1 where id = $2 and leased_by is not null', [Date.now() - 1, jobId])
    }
  }
}

export interface DurabilityContext {
  fake: FakeAzure
  /** Each case's storage (a fresh one per call). */
  storage: () => Promise<Storage>
}

/** A server on `storage`, GLOBAL_BATCH when `batch`, ready. */
async function startServer (fake: FakeAzure, storage: Storage, batch: boolean): Promise<ServerProcess> {
  const server = await spawnServer({
    ...fake.identityEnv(),
    AZURE_OPENAI_ENDPOINT: fake.origin,
    AZURE_OPENAI_DEPLOYMENT: 'gpt-4o-vision',
    ...(batch ? { AZURE_OPENAI_BATCH_DEPLOYMENT: BATCH_DEPLOYMENT, BULK_POLL_INTERVAL_S: '1' } : {}),
    BULK_MAX_CONCURRENCY: '2',
    BULK_PREPARE_CONCURRENCY: '1',
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
    ...storage.env
  })
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (await fetch(`${server.origin}/health/ready`).then(res => res.status, () => 0) === 200) return server
    if (server.child.exitCode !== null) break
    await sleep(50)
  }
  await stopServer(server)
  throw new Error(`the server did not get ready: ${server.output().slice(-2000)}`)
}

async function jobOf (server: ServerProcess, id: string): Promise<any> {
  const res = await fetch(`${server.origin}/graphql`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: JOB, variables: { id, first: 100 } })
  })
  return (await res.json() as any).data?.bulkJob
}

/** Polls the job until `done` (or it ends otherwise, or 90 s pass: an error saying where it stood). */
async function until (server: ServerProcess, id: string, done: (job: any) => boolean, what: string): Promise<any> {
  const deadline = Date.now() + 90_000
  for (;;) {
    const found = await jobOf(server, id).catch(() => undefined)
    if (found != null && done(found)) return found
    if (Date.now() > deadline || (found != null && FINISHED.includes(found.status))) {
      throw new Error(`${what}: the job is ${JSON.stringify(found?.counts)} ${found?.status} ${JSON.stringify(found?.items.edges.slice(0, 2))}\n${server.output().slice(-2000)}`)
    }
    await sleep(20)
  }
}

/** Polls `check` until it holds (or throws after `ms`). */
async function waitFor (check: () => Promise<boolean> | boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

async function createJob (server: ServerProcess, archive: Buffer): Promise<string> {
  const body = await createBody({ archive })
  const res = await fetch(`${server.origin}/graphql`, { method: 'POST', headers: body.headers, body: new Uint8Array(body.payload) })
  const answer = await res.json() as any
  if (answer.errors !== undefined) throw new Error(JSON.stringify(answer.errors))
  return answer.data.createBulkJob.id
}

/** `count` distinct small PNGs in a stored ZIP (cheap to prepare: the batch cases are about the chunk's steps). */
async function smallPhotos (count: number): Promise<Buffer> {
  const photos = await Promise.all(Array.from({ length: count }, async (_, i) => await png(40 + (i % 40), 30 + Math.floor(i / 40))))
  return makeZip(photos.map((data, i) => ({ name: `yard/photo-${i}.png`, data, method: 0 })))
}

/** Files under DATA_DIR/bulk, waiting up to 3 s for the finished job's clean-up. */
async function leftoverFiles (dataDir: string): Promise<string[]> {
  const files = (): string[] => {
    try {
      return readdirSync(join(dataDir, 'bulk'), { recursive: true, withFileTypes: true }).filter(e => e.isFile()).map(e => e.name)
    } catch { return [] }
  }
  const deadline = Date.now() + 3000
  while (files().length > 0 && Date.now() < deadline) await sleep(50)
  return files()
}

/** Answered items: the identifications of the job, with how many times each id was written. */
async function identificationCounts (storage: Storage, jobId: string): Promise<Map<string, number>> {
  const rows = await storage.query('select id, count(*) as n from identifications where bulk_job_id = $1 group by id', [jobId])
  return new Map(rows.map(row => [String(row.id), Number(row.n)]))
}

/** What every case asserts once the job is done. */
async function assertExactlyOnce (t: Test, storage: Storage, jobId: string, total: number): Promise<void> {
  const records = await identificationCounts(storage, jobId)
  t.equal(records.size, total, 'an identification per photo')
  t.ok([...records.values()].every(n => n === 1), 'each written once')
  const items = await storage.query('select id, status from bulk_items where job_id = $1', [jobId])
  t.strictSame(items.map(item => String(item.id)).sort(), [...records.keys()].sort(), 'each item\'s id is its identification\'s')
  t.ok(items.every(item => item.status === 'SUCCEEDED'), 'every item SUCCEEDED')
  // Charged once too: the job's tokens are the sum of its identifications' (an item answered twice would add twice).
  const [answered] = await storage.query(
    'select sum(prompt_tokens) as prompt, sum(completion_tokens) as completion from identifications where bulk_job_id = $1', [jobId])
  const [job] = await storage.query('select prompt_tokens, completion_tokens from bulk_jobs where id = $1', [jobId])
  t.ok(Number(answered?.prompt) > 0, 'the answers carry tokens')
  t.strictSame([Number(job?.prompt_tokens), Number(job?.completion_tokens)], [Number(answered?.prompt), Number(answered?.completion)],
    'the job\'s tokens are its identifications\', each counted once')
  t.strictSame(await leftoverFiles(storage.dataDir), [], 'no file left under DATA_DIR/bulk')
}

/** The batch cases' checks at Azure: one batch for the chunk, each custom_id submitted once, its files deleted. */
async function assertBatchOnce (
  t: Test, fake: FakeAzure, storage: Storage, jobId: string, total: number, createsBefore: number
): Promise<void> {
  t.equal(fake.batchCreates - createsBefore, 1, 'one batch made for the chunk')
  const items = await storage.query('select id from bulk_items where job_id = $1', [jobId])
  const submitted = items.map(item => fake.customIdsSubmitted.get(String(item.id)) ?? 0)
  t.equal(submitted.length, total)
  t.ok(submitted.every(n => n === 1), `every custom_id submitted once (${JSON.stringify([...new Set(submitted)])})`)
  const chunks = await storage.query('select input_file_id, output_file_id, error_file_id from bulk_chunks where job_id = $1', [jobId])
  t.equal(chunks.length, 1, 'one chunk')
  const files = chunks.flatMap(chunk => [chunk.input_file_id, chunk.output_file_id, chunk.error_file_id])
    .filter(id => id !== null).map(String)
  t.ok(files.length === 3, 'the chunk\'s input, output and error files are recorded')
  await waitFor(() => files.every(id => fake.deletedFiles.includes(id)), 'the batch files deleted at Azure', 5000)
    .then(() => t.pass('the input, output and error files are deleted at Azure'), err => t.fail(String(err)))
}

/** ONLINE: kill -9 while preparing, then while answering. */
export async function onlineKillCase (t: Test, { fake, storage: makeStorage }: DurabilityContext, photos = 24): Promise<void> {
  const storage = await makeStorage()
  fake.chatFault = () => ({ kind: 'ok', latencyMs: 150 })
  t.teardown(() => { fake.chatFault = () => ({ kind: 'ok' }) })
  const chatsBefore = fake.chatRequests.length
  const images = await Promise.all(Array.from({ length: photos }, async (_, i) => await jpeg(1600 + i, 1200)))
  const archive = makeZip(images.map((data, i) => ({ name: `yard/photo-${i}.jpg`, data, method: 0 })))

  let server = await startServer(fake, storage, false)
  const id = await createJob(server, archive)
  await until(server, id, found => found.status === 'PREPARING', 'preparing')
  await sleep(150)
  await stopServer(server) // SIGKILL
  t.pass('killed while PREPARING')
  await storage.leasePassed(id)

  server = await startServer(fake, storage, false)
  const running = await until(server, id, found => found.status === 'RUNNING' && found.counts.succeeded >= 2, 'answering')
  await stopServer(server)
  t.ok(running.counts.pending > 0, `killed while answering (${JSON.stringify(running.counts)})`)
  await storage.leasePassed(id)

  server = await startServer(fake, storage, false)
  t.teardown(() => stopServer(server))
  const done = await until(server, id, found => FINISHED.includes(found.status), 'completing')
  t.equal(done.status, 'COMPLETED')
  t.strictSame(done.counts, { total: photos, pending: 0, succeeded: photos, failed: 0, cancelled: 0 })
  await assertExactlyOnce(t, storage, id, photos)
  const asked = fake.chatRequests.length - chatsBefore
  t.ok(asked >= photos, `the model was asked ${asked} times (in flight at a kill: asked again)`)
}

/**
 * GLOBAL_BATCH: kill -9 once the batch create has reached Azure but before its reply (so before the batch id is
 * stored): the restarted server adopts the batch carrying the chunk's id instead of making a second one.
 */
export async function batchCreateKillCase (t: Test, { fake, storage: makeStorage }: DurabilityContext, photos = 6): Promise<void> {
  const storage = await makeStorage()
  const createsBefore = fake.batchCreates
  fake.batchTimeline = { validatingMs: 0, inProgressMs: 0, finalizingMs: 0, cancellingMs: 0 }
  let held = false
  fake.batchFault = () => {
    if (held) return 'ok'
    held = true
    return 'hold-reply'
  }
  t.teardown(() => { fake.batchFault = () => 'ok' })

  let server = await startServer(fake, storage, true)
  const id = await createJob(server, await smallPhotos(photos))
  await waitFor(() => fake.batchCreates > createsBefore, 'the batch create at the fake')
  await stopServer(server) // SIGKILL, the create's reply still held
  const [chunk] = await storage.query('select status, batch_id, input_file_id from bulk_chunks where job_id = $1', [id])
  t.equal(chunk?.status, 'UPLOADED', 'killed after the upload, before the create\'s reply was stored')
  t.equal(chunk?.batch_id, null, 'the batch id was never stored')
  fake.releaseHung()
  await storage.leasePassed(id)

  server = await startServer(fake, storage, true)
  t.teardown(() => stopServer(server))
  const done = await until(server, id, found => FINISHED.includes(found.status), 'completing')
  t.equal(done.status, 'COMPLETED')
  t.strictSame(done.counts, { total: photos, pending: 0, succeeded: photos, failed: 0, cancelled: 0 })
  const [adopted] = await storage.query('select batch_id from bulk_chunks where job_id = $1', [id])
  t.equal(adopted?.batch_id, fake.batches.at(-1)?.id, 'the batch made before the kill was adopted')
  await assertBatchOnce(t, fake, storage, id, photos, createsBefore)
  await assertExactlyOnce(t, storage, id, photos)
}

/**
 * GLOBAL_BATCH: kill -9 once the chunk's file upload has reached Azure but before its reply (so before the file id
 * is stored): the restarted server adopts the file of the chunk's name instead of uploading a second one, which
 * nobody would delete (a resource holds at most 500 files).
 */
export async function uploadKillCase (t: Test, { fake, storage: makeStorage }: DurabilityContext, photos = 6): Promise<void> {
  const storage = await makeStorage()
  const uploadsBefore = fake.fileCreates
  const createsBefore = fake.batchCreates
  fake.batchTimeline = { validatingMs: 0, inProgressMs: 0, finalizingMs: 0, cancellingMs: 0 }
  fake.fileFault = index => index === uploadsBefore ? 'hold-reply' : 'ok'
  t.teardown(() => { fake.fileFault = () => 'ok' })

  let server = await startServer(fake, storage, true)
  const id = await createJob(server, await smallPhotos(photos))
  await waitFor(() => fake.fileCreates > uploadsBefore, 'the upload at the fake')
  await stopServer(server) // SIGKILL, the upload's reply still held
  const [chunk] = await storage.query('select status, input_file_id from bulk_chunks where job_id = $1', [id])
  t.equal(chunk?.status, 'WRITTEN', 'killed after the upload reached Azure, before its reply was stored')
  t.equal(chunk?.input_file_id, null, 'the file id was never stored')
  fake.releaseHung()
  await storage.leasePassed(id)

  server = await startServer(fake, storage, true)
  t.teardown(() => stopServer(server))
  const done = await until(server, id, found => FINISHED.includes(found.status), 'completing')
  t.equal(done.status, 'COMPLETED')
  t.strictSame(done.counts, { total: photos, pending: 0, succeeded: photos, failed: 0, cancelled: 0 })
  t.equal(fake.fileCreates - uploadsBefore, 1, 'one upload: the file was adopted, not uploaded again')
  await assertBatchOnce(t, fake, storage, id, photos, createsBefore)
  await assertExactlyOnce(t, storage, id, photos)
}

/**
 * GLOBAL_BATCH: kill -9 while the output file is being read: the first page (500 lines) recorded, the rest held
 * by the fake. The restarted server reads the file again, skips what is recorded, records the rest: nothing twice.
 */
export async function batchReadKillCase (t: Test, { fake, storage: makeStorage }: DurabilityContext, photos = 520): Promise<void> {
  const PAGE = 500 // global-batch.ts's page of outcomes recorded before reading on
  const storage = await makeStorage()
  const createsBefore = fake.batchCreates
  const chatsBefore = fake.chatRequests.length
  fake.batchTimeline = { validatingMs: 0, inProgressMs: 0, finalizingMs: 0, cancellingMs: 0 }
  const outputReads: number[] = []
  fake.contentHold = (file, read) => {
    if (!file.filename.endsWith('_output.jsonl')) return null
    outputReads.push(read)
    return read === 0 ? PAGE + 10 : null
  }
  t.teardown(() => { fake.contentHold = () => null })

  let server = await startServer(fake, storage, true)
  const id = await createJob(server, await smallPhotos(photos))
  await waitFor(async () => (await identificationCounts(storage, id)).size >= PAGE, 'the first page of results recorded', 90_000)
  await sleep(200) // nothing more can come: the fake holds the file's rest
  await stopServer(server) // SIGKILL while reading
  const recorded = await identificationCounts(storage, id)
  t.equal(recorded.size, PAGE, `killed while reading: ${recorded.size} of ${photos} recorded`)
  const [chunk] = await storage.query('select status from bulk_chunks where job_id = $1', [id])
  t.equal(chunk?.status, 'READING')
  fake.releaseHung()
  await storage.leasePassed(id)

  server = await startServer(fake, storage, true)
  t.teardown(() => stopServer(server))
  const done = await until(server, id, found => FINISHED.includes(found.status), 'completing')
  t.equal(done.status, 'COMPLETED')
  t.strictSame(done.counts, { total: photos, pending: 0, succeeded: photos, failed: 0, cancelled: 0 })
  t.strictSame(outputReads, [0, 1], 'the output file read again after the restart')
  t.equal(fake.chatRequests.length - chatsBefore, 0, 'no photo asked again online: each answered once, by the batch')
  await assertBatchOnce(t, fake, storage, id, photos, createsBefore)
  await assertExactlyOnce(t, storage, id, photos)
}

export async function durabilityFake (t: Test): Promise<FakeAzure> {
  const fake = await new FakeAzure().start()
  t.teardown(() => fake.close())
  return fake
}
