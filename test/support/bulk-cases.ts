// Bulk jobs end to end on the simulated backend (ONLINE mode), in process: the same cases on each database
// (test/bulk-jobs.test.ts: SQLite; test/bulk-jobs-postgres.test.ts: PostgreSQL).
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { buildTestApp } from '../helper.ts'
import { sendJson } from './http.ts'
import { jpeg, png, text } from './images.ts'
import { makeZip } from './zip.ts'
import { createJob, job, until } from './bulk.ts'
import { gatedVision } from './gated-vision.ts'
import { newApiKey } from '../../src/callers/api-keys.ts'
import { historyInternals } from '../../src/history/plugin.ts'
import { bulkInternals } from '../../src/bulk/plugin.ts'
import type { DatabaseEnv } from './history-records.ts'
import { FAST_ENV, admin, createEndpoint, identify as identifyAsDashboard, waitFor } from './webhooks.ts'
import { startReceiver } from './webhook-receiver.ts'
import { subscribe } from './subscriber.ts'

const LIST = `query ($filter: IdentificationFilter) {
  identifications(first: 100, filter: $filter) { edges { node { id bulkJobId } } }
}`

/** Every file left under DATA_DIR/bulk (incoming uploads, jobs' folders), once the job's end has removed its own (2 s at most). */
async function leftovers (dataDir: string): Promise<string[]> {
  const deadline = Date.now() + 2000
  for (;;) {
    const found = filesUnder(dataDir)
    if (found.length === 0 || Date.now() > deadline) return found
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

function filesUnder (dataDir: string): string[] {
  try {
    return readdirSync(join(dataDir, 'bulk'), { recursive: true, withFileTypes: true })
      .filter(entry => entry.isFile()).map(entry => join(entry.parentPath, entry.name))
  } catch {
    return []
  }
}

export function bulkCases (t: Test, databaseEnv: DatabaseEnv, dataDir: () => string): void {
  t.test('images: each photo an identification of the job, a file that is not one FAILED with identifyVehicle\'s code; COMPLETED, no file left', async t => {
    const DATA_DIR = dataDir()
    const app = await buildTestApp(t, { env: { ...await databaseEnv(t), DATA_DIR } })
    const created = await createJob(app, { images: [await jpeg(640, 480), text, await png(64, 48), await jpeg(65, 48)] })
    t.equal(created.statusCode, 200, JSON.stringify(created.body.errors))
    const { id, status, mode } = created.body.data.createBulkJob
    t.ok(['RECEIVED', 'PREPARING', 'RUNNING', 'COMPLETED'].includes(status), `returned at once: ${status}`)
    t.equal(mode, 'ONLINE', 'no Global Batch deployment: ONLINE')

    const done = await until(app, id, ['COMPLETED', 'FAILED', 'CANCELLED'])
    t.equal(done.status, 'COMPLETED')
    t.strictSame(done.counts, { total: 4, pending: 0, succeeded: 3, failed: 1, cancelled: 0 })
    t.ok(done.completedAt)
    const items = done.items.edges.map((edge: any) => edge.node)
    t.strictSame(items.map((item: any) => item.name), ['images[0]', 'images[1]', 'images[2]', 'images[3]'], 'in upload order')
    t.strictSame(items.map((item: any) => item.status), ['SUCCEEDED', 'FAILED', 'SUCCEEDED', 'SUCCEEDED'])
    t.equal(items[1].code, 'BAD_USER_INPUT', 'text: the code identifyVehicle gives')
    t.equal(items[1].identification, null)
    for (const item of [items[0], items[2], items[3]]) t.equal(item.identification.bulkJobId, id, 'its identification names the job')
    t.equal(items[0].identification.image.bytes, (await jpeg(640, 480)).length, 'the image facts are the upload\'s, not the prepared image\'s')

    const listed = await sendJson(app, { query: LIST, variables: { filter: { bulkJobId: id } } })
    t.strictSame(listed.body.data.identifications.edges.map((e: any) => e.node.id).sort(),
      [items[0], items[2], items[3]].map((item: any) => item.identification.id).sort(), 'IdentificationFilter.bulkJobId')
    const db = historyInternals(app.history!).store.db
    const rows = await db.selectFrom('identifications').select(['id', 'outcome']).where('bulk_job_id' as any, '=', id).execute()
    t.equal(rows.length, 4, 'one record per item, the failed one too')
    t.strictSame(await leftovers(DATA_DIR), [], 'the job\'s files are gone, no upload left')

    // Retention: a finished job past HISTORY_RETENTION_DAYS goes, its items with it.
    const { store } = bulkInternals(app.bulk!)
    t.equal(await store.purge(Date.now() - 86_400_000, 1000), 0, 'a job of today stays')
    t.equal(await store.purge(Date.now() + 1, 1000), 1, 'past the cutoff: purged')
    t.equal(await job(app, id), null, 'gone')
    t.equal((await store.listItems(id, 10, null, null)).rows.length, 0, 'its items too')
  })

  t.test('an archive: photos in archive order, skipped entries not items, refused entries FAILED with their code', async t => {
    const DATA_DIR = dataDir()
    const app = await buildTestApp(t, { env: { ...await databaseEnv(t), DATA_DIR } })
    const archive = makeZip([
      { name: 'yard/', data: Buffer.alloc(0), method: 0 },
      { name: 'yard/tractor.jpg', data: await jpeg(320, 240) },
      { name: '__MACOSX/yard/._tractor.jpg', data: Buffer.from('resource fork') },
      { name: 'yard/.DS_Store', data: Buffer.from('x') },
      { name: 'yard/notes.txt', data: text },
      { name: 'yard/combine.png', data: await png(80, 60), method: 0 },
      { name: 'yard/secret.jpg', data: await jpeg(40, 40), flags: 0x1 }
    ])
    const created = await createJob(app, { archive })
    t.equal(created.statusCode, 200, JSON.stringify(created.body.errors))
    const done = await until(app, created.body.data.createBulkJob.id, ['COMPLETED'])
    const items = done.items.edges.map((edge: any) => edge.node)
    t.strictSame(items.map((item: any) => [item.name, item.status]), [
      ['yard/tractor.jpg', 'SUCCEEDED'],
      ['yard/notes.txt', 'FAILED'],
      ['yard/combine.png', 'SUCCEEDED'],
      ['yard/secret.jpg', 'FAILED']
    ])
    t.equal(items[1].code, 'BAD_USER_INPUT')
    t.ok(items[3].code, 'an encrypted entry fails with a code')
    t.strictSame(done.counts, { total: 4, pending: 0, succeeded: 2, failed: 2, cancelled: 0 })
    t.strictSame(await leftovers(DATA_DIR), [])
  })

  t.test('who sees and cancels what; cancel ends the unanswered items CANCELLED; bulkJobs pages newest first', async t => {
    const alice = newApiKey('alice')
    const bob = newApiKey('bob')
    const dashboard = newApiKey('dashboard')
    const admin = newApiKey('admin')
    const gated = gatedVision()
    const DATA_DIR = dataDir()
    const app = await buildTestApp(t, {
      vision: gated.vision,
      env: {
        ...await databaseEnv(t),
        DATA_DIR,
        AUTH_MODE: 'apikey',
        BULK_MAX_CONCURRENCY: '1',
        API_KEY_HASHES: [alice.entry, bob.entry, `${dashboard.entry}:VehicleIdentification.ReadAll`,
          `${admin.entry}:VehicleIdentification.Admin`].join(',')
      }
    })
    const as = (key: { key: string }) => ({ 'x-api-key': key.key })
    const { started } = gated.hold()
    const created = await createJob(app, { images: [await jpeg(64, 48), await jpeg(65, 48), await jpeg(66, 48)] }, as(alice))
    const id = created.body.data.createBulkJob.id
    await started // the first photo is with the model: the others wait in the background lane

    t.equal(await job(app, id, as(bob)), null, 'bob does not see alice\'s job')
    t.equal((await job(app, id, as(dashboard))).id, id, 'ReadAll sees it')
    const cancel = async (who: { key: string }) =>
      (await sendJson(app, { query: 'mutation ($id: ID!) { cancelBulkJob(id: $id) { id status } }', variables: { id } }, as(who))).body
    t.equal((await cancel(bob)).data.cancelBulkJob, null, 'bob cannot cancel it')
    t.equal((await cancel(admin)).data.cancelBulkJob.id, id, 'Admin may cancel anyone\'s')
    gated.open()
    const done = await until(app, id, ['CANCELLED', 'COMPLETED'], as(alice))
    t.equal(done.status, 'CANCELLED')
    t.equal(done.counts.total, 3)
    t.equal(done.counts.pending, 0, 'nothing left pending')
    t.ok(done.counts.cancelled >= 1, `the photos not answered are CANCELLED (${JSON.stringify(done.counts)})`)
    t.equal(done.counts.succeeded + done.counts.failed + done.counts.cancelled, 3)
    t.strictSame(await leftovers(DATA_DIR), [])

    const second = (await createJob(app, { images: [await jpeg(67, 48)] }, as(alice))).body.data.createBulkJob.id
    await until(app, second, ['COMPLETED'], as(alice))
    const page = async (who: { key: string }, after: string | null) => (await sendJson(app, {
      query: 'query ($after: String) { bulkJobs(first: 1, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }',
      variables: { after }
    }, as(who))).body.data.bulkJobs
    const first = await page(alice, null)
    t.strictSame(first.edges.map((e: any) => e.node.id), [second], 'newest first')
    t.equal(first.pageInfo.hasNextPage, true)
    const next = await page(alice, first.pageInfo.endCursor)
    t.strictSame(next.edges.map((e: any) => e.node.id), [id])
    t.equal(next.pageInfo.hasNextPage, false)
    t.strictSame((await page(bob, null)).edges, [], 'bob has none')
  })

  t.test('webhooks: bulk_job.completed exactly once, with the job; no identification.completed per item', async t => {
    const receiver = await startReceiver(t)
    const DATA_DIR = dataDir()
    const app = await buildTestApp(t, { env: { ...await databaseEnv(t), DATA_DIR, ...FAST_ENV } })
    const endpoint = await createEndpoint(app, receiver.url(), ['IDENTIFICATION_COMPLETED', 'BULK_JOB_COMPLETED'])
    t.ok(endpoint.id, JSON.stringify(endpoint.answer.body.errors))
    const created = await createJob(app, { images: [await jpeg(64, 48), await jpeg(65, 48), text] }, admin)
    const id = created.body.data.createBulkJob.id
    await until(app, id, ['COMPLETED'], admin)
    const single = await identifyAsDashboard(app) // an ordinary identification is still announced
    await waitFor(() => receiver.received.some(r => JSON.parse(r.body).data?.id === single), 10_000, 'the ordinary identification\'s event')
    await waitFor(() => receiver.received.some(r => JSON.parse(r.body).type === 'bulk_job.completed'), 10_000, 'the job\'s event')
    await new Promise(resolve => setTimeout(resolve, 500)) // anything more would have come by now
    const bodies = receiver.received.map(r => JSON.parse(r.body))
    const jobEvents = bodies.filter(body => body.type === 'bulk_job.completed')
    t.equal(jobEvents.length, 1, 'the job is announced once')
    t.equal(jobEvents[0].data.id, id)
    t.equal(jobEvents[0].data.status, 'COMPLETED')
    t.strictSame(jobEvents[0].data.counts, { total: 3, pending: 0, succeeded: 2, failed: 1, cancelled: 0 })
    t.strictSame(bodies.filter(body => body.type !== 'bulk_job.completed').map(body => body.data.id), [single],
      'no identification event for the job\'s items')
  })

  t.test('bulkJobUpdated: status changes as they happen, the last COMPLETED; another caller\'s job is NOT_FOUND', async t => {
    const alice = newApiKey('alice')
    const bob = newApiKey('bob')
    const DATA_DIR = dataDir()
    const app = await buildTestApp(t, {
      env: { ...await databaseEnv(t), DATA_DIR, AUTH_MODE: 'apikey', API_KEY_HASHES: [alice.entry, bob.entry].join(',') }
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    const url = `ws://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/graphql`
    const gated = { 'x-api-key': alice.key }
    const created = await createJob(app, { images: [await jpeg(64, 48), await jpeg(65, 48)] }, gated)
    const id = created.body.data.createBulkJob.id
    const query = 'subscription ($id: ID!) { bulkJobUpdated(id: $id) { id status counts { total succeeded pending } } }'
    const watcher = subscribe(url, { query, variables: { id }, connectionParams: { 'x-api-key': alice.key } })
    t.teardown(() => watcher.dispose())
    const statuses: string[] = []
    for (;;) {
      const payload = await watcher.next(10_000)
      t.notOk(payload.errors, JSON.stringify(payload.errors))
      statuses.push(payload.data.bulkJobUpdated.status)
      if (payload.data.bulkJobUpdated.status === 'COMPLETED') {
        t.equal(payload.data.bulkJobUpdated.counts.succeeded, 2)
        break
      }
    }
    t.ok(statuses.length >= 1, `updates: ${statuses.join(', ')}`)

    const intruder = subscribe(url, { query, variables: { id }, connectionParams: { 'x-api-key': bob.key } })
    t.teardown(() => intruder.dispose())
    const refused = await intruder.error as Array<{ extensions?: { code?: string } }>
    t.equal(refused[0]?.extensions?.code, 'NOT_FOUND', 'bob cannot watch alice\'s job')
  })

  t.test('BULK_MAX_ACTIVE_JOBS_PER_CALLER counts the caller\'s jobs in the database: one more is RATE_LIMITED, another caller is not', async t => {
    const alice = newApiKey('alice')
    const bob = newApiKey('bob')
    const gated = gatedVision()
    const app = await buildTestApp(t, {
      vision: gated.vision,
      env: {
        ...await databaseEnv(t),
        DATA_DIR: dataDir(),
        AUTH_MODE: 'apikey',
        API_KEY_HASHES: [alice.entry, bob.entry].join(','),
        BULK_MAX_ACTIVE_JOBS_PER_CALLER: '1',
        BULK_MAX_CONCURRENCY: '1'
      }
    })
    const { started } = gated.hold()
    const first = await createJob(app, { images: [await jpeg(64, 48)] }, { 'x-api-key': alice.key })
    await started
    const second = await createJob(app, { images: [await jpeg(65, 48)] }, { 'x-api-key': alice.key })
    t.equal(second.statusCode, 429)
    t.equal(second.body.errors?.[0]?.extensions.code, 'RATE_LIMITED', 'alice has one job running')
    const bobs = await createJob(app, { images: [await jpeg(66, 48)] }, { 'x-api-key': bob.key })
    t.equal(bobs.statusCode, 200, 'bob has his own allowance')
    gated.open()
    await until(app, first.body.data.createBulkJob.id, ['COMPLETED'], { 'x-api-key': alice.key })
    const third = await createJob(app, { images: [await jpeg(67, 48)] }, { 'x-api-key': alice.key })
    t.equal(third.statusCode, 200, 'once it completed, alice may send another')
    await until(app, third.body.data.createBulkJob.id, ['COMPLETED'], { 'x-api-key': alice.key })
  })
}
