// A bulk job survives kill -9: the real server process is killed while it prepares the photos, then again while it
// answers them (ONLINE, against a loopback fake of Azure OpenAI answering slowly), and started again on the same
// DATA_DIR each time. The job completes; every photo has exactly one identification; no file is left behind.
import t from 'tap'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { FakeAzure } from './support/fake-azure.ts'
import { jpeg } from './support/images.ts'
import { makeZip } from './support/zip.ts'
import { createBody, JOB } from './support/bulk.ts'
import { spawnServer, stopServer, type ServerProcess } from './support/server-process.ts'
import { tempDataDir } from './helper.ts'

const PHOTOS = 24
const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
fake.chatFault = () => ({ kind: 'ok', latencyMs: 150 })

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

async function start (dataDir: string): Promise<ServerProcess> {
  const server = await spawnServer({
    ...fake.identityEnv(),
    AZURE_OPENAI_ENDPOINT: fake.origin,
    AZURE_OPENAI_DEPLOYMENT: 'gpt-4o-vision',
    DATA_DIR: dataDir,
    BULK_MAX_CONCURRENCY: '2',
    BULK_PREPARE_CONCURRENCY: '1',
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0'
  })
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (await fetch(`${server.origin}/health/ready`).then(res => res.status, () => 0) === 200) return server
    await sleep(50)
  }
  throw new Error(`the server did not get ready: ${server.output().slice(-2000)}`)
}

async function job (server: ServerProcess, id: string): Promise<any> {
  const res = await fetch(`${server.origin}/graphql`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: JOB, variables: { id, first: 100 } })
  })
  return (await res.json() as any).data?.bulkJob
}

async function until (server: ServerProcess, id: string, done: (job: any) => boolean, what: string): Promise<any> {
  const deadline = Date.now() + 90_000
  for (;;) {
    const found = await job(server, id).catch(() => undefined)
    if (found !== undefined && found !== null && done(found)) return found
    if (Date.now() > deadline || (found != null && found.status !== 'PREPARING' && found.status !== 'RUNNING' && found.status !== 'RECEIVED' && !done(found))) {
      throw new Error(`${what}: the job is ${JSON.stringify(found?.counts)} ${found?.status} ${JSON.stringify(found?.items.edges.slice(0, 2))}`)
    }
    await sleep(20)
  }
}

t.test('kill -9 while preparing, then while answering: the job completes, one identification per photo, no file left', { timeout: 240_000 }, async t => {
  const dataDir = tempDataDir()
  const photos = await Promise.all(Array.from({ length: PHOTOS }, async (_, i) => await jpeg(1600 + i, 1200)))
  const archive = makeZip(photos.map((data, i) => ({ name: `yard/photo-${i}.jpg`, data, method: 0 })))
  const body = await createBody({ archive })

  let server = await start(dataDir)
  const created = await fetch(`${server.origin}/graphql`, { method: 'POST', headers: body.headers, body: new Uint8Array(body.payload) })
  const answer = await created.json() as any
  t.notOk(answer.errors, JSON.stringify(answer.errors))
  const id: string = answer.data.createBulkJob.id
  await until(server, id, found => found.status === 'PREPARING', 'preparing')
  await sleep(150)
  await stopServer(server) // SIGKILL
  t.pass('killed while PREPARING')

  server = await start(dataDir)
  const running = await until(server, id, found => found.status === 'RUNNING' && found.counts.succeeded >= 2, 'answering')
  t.ok(running.counts.pending > 0, `killed while answering (${JSON.stringify(running.counts)})`)
  await stopServer(server)

  server = await start(dataDir)
  t.teardown(() => stopServer(server))
  const done = await until(server, id, found => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(found.status), 'completing')
  t.equal(done.status, 'COMPLETED')
  t.strictSame(done.counts, { total: PHOTOS, pending: 0, succeeded: PHOTOS, failed: 0, cancelled: 0 })

  const db = new DatabaseSync(join(dataDir, 'history.db'), { readOnly: true })
  t.teardown(() => db.close())
  const records = db.prepare('select id, count(*) as n from identifications where bulk_job_id = ? group by id').all(id) as Array<{ id: string, n: number }>
  t.equal(records.length, PHOTOS, 'a record per photo')
  t.ok(records.every(row => Number(row.n) === 1), 'each written once')
  const items = db.prepare('select id from bulk_items where job_id = ?').all(id) as Array<{ id: string }>
  t.strictSame(items.map(item => item.id).sort(), records.map(row => row.id).sort(), 'each item\'s id is its identification\'s')
  t.ok(fake.chatRequests.length >= PHOTOS, `the model was asked ${fake.chatRequests.length} times (in flight at a kill: asked again)`)

  const deadline = Date.now() + 3000
  const files = (): string[] => {
    try {
      return readdirSync(join(dataDir, 'bulk'), { recursive: true, withFileTypes: true }).filter(e => e.isFile()).map(e => e.name)
    } catch { return [] }
  }
  while (files().length > 0 && Date.now() < deadline) await sleep(50)
  t.strictSame(files(), [], 'no file left under DATA_DIR/bulk')
})
