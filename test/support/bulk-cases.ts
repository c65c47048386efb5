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
import type { DatabaseEnv } from './history-records.ts'

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
}
