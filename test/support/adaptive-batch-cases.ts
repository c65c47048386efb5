// ADAPTIVE detail in GLOBAL_BATCH jobs, on SQLite (test/bulk-adaptive-batch.test.ts) and PostgreSQL
// (-postgres.test.ts), against the loopback fake whose answers depend on the detail each line sends: a first batch
// of LOW looks (detail "low", ≤ 512×512 images), a second batch of HIGH looks for the unsure photos only (custom_id
// `<id>:high`, detail "high", the HIGH image); each reason for a second look; one identification per photo (looks,
// detailUsed, both looks' tokens); prepared images deleted as items are answered; cancel and restart between the
// two phases; detail HIGH keeps one batch; an ONLINE job takes the online adaptive path.
import type { Test } from 'tap'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { imageSize } from 'image-size'
import type { FastifyInstance } from 'fastify'
import {
  DEFAULT_ANSWER, FakeAzure, imageFromChat, sentColourKey, USAGE_COMPLETION_TOKENS, USAGE_TEXT_TOKENS, colourKey,
  type AnswersByDetail, type ChatFault, type ChatRequestRecord
} from './fake-azure.ts'
import { buildAzureTestApp, tempDataDir } from '../helper.ts'
import { encodeParts, type Part } from './multipart.ts'
import { photoOfColour } from './images.ts'
import { bulkInternals } from '../../src/bulk/plugin.ts'
import type { BulkJobs } from '../../src/bulk/public.ts'
import type { VisionAnswer } from '../../src/vision/answer-schema.ts'

const BATCH_DEPLOYMENT = 'gpt-4o-batch'
/** The photos' size: LOW sends 512×384, HIGH 1024×768 (765 image tokens by the tile rule). */
const WIDTH = 1200
const HEIGHT = 900
const HIGH_TOKENS = 765

const vehicle = DEFAULT_ANSWER.vehicles[0]!
const close = (name: string): VisionAnswer => ({ ...DEFAULT_ANSWER, answer: `close look: ${name}` })
const far = (name: string, change: Partial<VisionAnswer>, confidence = vehicle.confidence): VisionAnswer =>
  ({ ...DEFAULT_ANSWER, answer: `far look: ${name}`, vehicles: [{ ...vehicle, confidence }], ...change })

/** Each photo: its colour (the fake's key), what it answers at each detail, and what the batch job should make of it. */
interface Case { name: string, rgb: { r: number, g: number, b: number }, answers: AnswersByDetail, looks: 1 | 2, detailUsed: 'LOW' | 'HIGH' }
const CASES: Case[] = [
  { name: 'sure', rgb: { r: 48, g: 128, b: 208 }, answers: { low: far('sure', {}), high: close('sure') }, looks: 1, detailUsed: 'LOW' },
  { name: 'medium', rgb: { r: 208, g: 48, b: 128 }, answers: { low: far('medium', {}, 'MEDIUM'), high: close('medium') }, looks: 1, detailUsed: 'LOW' },
  { name: 'no vehicle', rgb: { r: 128, g: 208, b: 48 }, answers: { low: far('no vehicle', { vehicles: [] }), high: close('no vehicle') }, looks: 2, detailUsed: 'HIGH' },
  { name: 'low confidence', rgb: { r: 48, g: 48, b: 208 }, answers: { low: far('low confidence', {}, 'LOW'), high: close('low confidence') }, looks: 2, detailUsed: 'HIGH' },
  { name: 'too small', rgb: { r: 208, g: 208, b: 48 }, answers: { low: far('too small', { imageQuality: 'TOO_SMALL' }), high: close('too small') }, looks: 2, detailUsed: 'HIGH' },
  // Its HIGH line is refused by the content filter: its LOW answer stands (looks 2, detailUsed LOW), as online.
  { name: 'high refused', rgb: { r: 48, g: 208, b: 208 }, answers: { low: far('high refused', {}, 'LOW'), high: close('high refused') }, looks: 2, detailUsed: 'LOW' }
]
const SURE = [0, 1]
const UNSURE = [2, 3, 4, 5]

export async function adaptiveBatchCases (t: Test, databaseEnv: () => Promise<Record<string, string>> = async () => ({})): Promise<void> {
  const fake = await new FakeAzure().start()
  t.teardown(() => fake.close())
  fake.usageByDetail = true
  const photos = await Promise.all(CASES.map(async c => await photoOfColour(c.rgb, WIDTH, HEIGHT)))
  const byColour = new Map(CASES.map(c => [colourKey(c.rgb), c]))

  /** The fake model: a line's answer by its photo's colour and the detail it sends; online calls say so. */
  async function answer (record: ChatRequestRecord): Promise<ChatFault> {
    const found = byColour.get(await sentColourKey(record))
    if (found === undefined) return { kind: 'status', status: 422 }
    const { detail } = imageFromChat(record)
    if (found.name === 'high refused' && detail !== 'low') return { kind: 'content-filter-prompt' }
    return { kind: 'ok', structured: detail === 'low' ? found.answers.low : found.answers.high }
  }

  /** A fresh data folder and database; ADAPTIVE the server's default detail, as in production (the tests' is AUTO). */
  async function storage (): Promise<Record<string, string>> {
    return { DATA_DIR: tempDataDir(), VISION_IMAGE_DETAIL: 'adaptive', ...await databaseEnv() }
  }

  async function bulkApp (t: Test, env: Record<string, string>, batch = true): Promise<FastifyInstance> {
    const { app } = await buildAzureTestApp(t, fake, {
      ...(batch ? { AZURE_OPENAI_BATCH_DEPLOYMENT: BATCH_DEPLOYMENT } : {}), BULK_POLL_INTERVAL_S: '1', ...env
    })
    return app
  }

  /** createBulkJob with `detail` (none: the server's default, ADAPTIVE). */
  async function createJob (app: FastifyInstance, files: Buffer[], detail?: string): Promise<string> {
    const operations = {
      query: `mutation ($images: [Upload!]) { createBulkJob(images: $images${detail === undefined ? '' : `, detail: ${detail}`}) { id } }`,
      variables: { images: files.map(() => null) }
    }
    const map = Object.fromEntries(files.map((_, i) => [String(i), [`variables.images.${i}`]]))
    const parts: Part[] = [['operations', JSON.stringify(operations)], ['map', JSON.stringify(map)],
      ...files.map((file, i): Part => [String(i), file, `photo-${i}.jpg`, 'image/jpeg'])]
    const { payload, headers } = await encodeParts(parts)
    const body = (await app.inject({ method: 'POST', url: '/graphql', payload, headers })).json()
    if (body.errors !== undefined) throw new Error(JSON.stringify(body.errors))
    return body.data.createBulkJob.id
  }

  async function graphql (app: FastifyInstance, query: string, variables: Record<string, unknown> = {}): Promise<any> {
    const body = (await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })).json()
    if (body.errors !== undefined) throw new Error(JSON.stringify(body.errors))
    return body.data
  }

  async function jobOf (app: FastifyInstance, id: string): Promise<any> {
    return (await graphql(app, `query ($id: ID!) { bulkJob(id: $id) { id status counts { total pending succeeded failed cancelled }
      usage { promptTokens completionTokens } items(first: 100) { edges { node { name status code identification {
        id answer looks detailUsed usage { promptTokens completionTokens } image { sentWidth sentHeight estimatedImageTokens } } } } } } }`,
    { id })).bulkJob
  }

  async function waitFor (app: FastifyInstance, id: string, until: (job: any) => boolean): Promise<any> {
    const deadline = Date.now() + 60_000
    for (;;) {
      const job = await jobOf(app, id)
      if (until(job)) return job
      if (Date.now() > deadline) throw new Error(`job still ${job.status}: ${JSON.stringify(job.counts)}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
  const ended = (job: any): boolean => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(job.status)

  async function waitUntil (what: string, check: () => boolean | Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 30_000
    while (!await check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  /** Item i's node (photo i is `images[i]`). */
  const nodeOf = (job: any, i: number): any => job.items.edges.find((edge: any) => edge.node.name === `images[${i}]`).node

  /** The two batches made since `before` and their lines. */
  function batchesSince (before: number): Array<{ id: string, lines: ReadonlyArray<{ custom_id: string, body: any }> }> {
    return fake.batches.slice(before).map(batch => ({ id: String(batch.id), lines: fake.batchInput(String(batch.id)) }))
  }

  function imageOf (line: { body: any }): { detail: string | undefined, width: number, height: number } {
    const { bytes, detail } = imageFromChat({ body: line.body } as ChatRequestRecord)
    const { width = 0, height = 0 } = imageSize(bytes)
    return { detail, width, height }
  }

  /** The job's prepared images on disk (its folder: DATA_DIR/bulk/jobs/<id>/prepared). */
  function preparedFiles (dataDir: string, id: string): string[] {
    const dir = join(dataDir, 'bulk', 'jobs', id, 'prepared')
    return existsSync(dir) ? readdirSync(dir).sort() : []
  }

  function assertExactlyOnce (t: Test): void {
    t.ok([...fake.customIdsSubmitted.values()].every(count => count === 1), 'no custom_id submitted twice')
  }

  t.beforeEach(() => {
    fake.chatFault = answer
    fake.batchFault = () => 'ok'
    fake.fileFault = () => 'ok'
    fake.batchTimeline = { validatingMs: 0, inProgressMs: 0, finalizingMs: 0, cancellingMs: 0 }
  })

  t.test('ADAPTIVE: LOW looks in a first batch, only the unsure photos at HIGH in a second; one identification each', async t => {
    const env = await storage()
    const app = await bulkApp(t, env)
    const before = { batches: fake.batches.length, chats: fake.chatRequests.length }
    const id = await createJob(app, photos, 'ADAPTIVE')
    const job = await waitFor(app, id, ended)
    t.equal(job.status, 'COMPLETED')
    t.same(job.counts, { total: 6, pending: 0, succeeded: 6, failed: 0, cancelled: 0 })
    t.equal(fake.chatRequests.length, before.chats, 'no online call')

    const batches = batchesSince(before.batches)
    t.equal(batches.length, 2, 'two batches')
    const [low, high] = batches as [typeof batches[0], typeof batches[0]]
    const idOf = (i: number): string => nodeOf(job, i).identification.id
    t.same(low.lines.map(line => line.custom_id).sort(), CASES.map((_, i) => idOf(i)).sort(), 'the first batch: every photo, custom_id = its id')
    for (const line of low.lines) {
      const image = imageOf(line)
      t.equal(image.detail, 'low')
      t.ok(image.width <= 512 && image.height <= 512, `a LOW image (${image.width}×${image.height})`)
    }
    t.same(high.lines.map(line => line.custom_id).sort(), UNSURE.map(i => `${idOf(i)}:high`).sort(), 'the second batch: the unsure photos only, `<id>:high`')
    for (const line of high.lines) t.same(imageOf(line), { detail: 'high', width: 1024, height: 768 }, 'the HIGH image')
    assertExactlyOnce(t)

    const lowPrompt = USAGE_TEXT_TOKENS + 85
    const highPrompt = USAGE_TEXT_TOKENS + HIGH_TOKENS
    CASES.forEach((c, i) => {
      const { identification } = nodeOf(job, i)
      t.equal(identification.looks, c.looks, `${c.name}: looks`)
      t.equal(identification.detailUsed, c.detailUsed, `${c.name}: detailUsed`)
      const answered = c.detailUsed === 'HIGH' ? c.answers.high : c.answers.low
      t.equal(identification.answer, answered.answer, `${c.name}: the ${c.detailUsed} look's answer`)
      const prompt = c.looks === 1 || c.name === 'high refused' ? lowPrompt : lowPrompt + highPrompt
      t.same(identification.usage, { promptTokens: prompt, completionTokens: USAGE_COMPLETION_TOKENS * (prompt === lowPrompt ? 1 : 2) },
        `${c.name}: usage = every answered call's tokens`)
      const sent = c.detailUsed === 'LOW' ? { sentWidth: 512, sentHeight: 384 } : { sentWidth: 1024, sentHeight: 768 }
      t.same(identification.image, { ...sent, estimatedImageTokens: 85 + (c.looks === 2 ? HIGH_TOKENS : 0) }, `${c.name}: image sent, every look's tokens`)
    })
    const tokens = CASES.reduce((sum, _, i) => sum + nodeOf(job, i).identification.usage.promptTokens, 0)
    t.equal(job.usage.promptTokens, tokens, 'the job\'s usage: both looks\' tokens')

    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).payload
    t.match(metrics, /agrivision_identification_looks_total\{looks="1"\} 2\n/, 'looks 1: the sure photos')
    t.match(metrics, /agrivision_identification_looks_total\{looks="2"\} 4\n/)
    t.match(metrics, /agrivision_second_look_reasons_total\{reason="no_vehicle"\} 1\n/)
    t.match(metrics, /agrivision_second_look_reasons_total\{reason="low_confidence"\} 2\n/)
    t.match(metrics, /agrivision_second_look_reasons_total\{reason="image_unclear"\} 1\n/)
    t.match(metrics, /agrivision_second_look_failures_total\{code="CONTENT_FILTERED"\} 1\n/)
    t.match(metrics, new RegExp(`agrivision_adaptive_image_tokens_total\\{kind="sent"\\} ${6 * 85 + 4 * HIGH_TOKENS}\\n`))
    t.match(metrics, new RegExp(`agrivision_adaptive_image_tokens_total\\{kind="high_only"\\} ${6 * HIGH_TOKENS}\\n`))
    await waitUntil('the job\'s folder removed', () => !existsSync(join(env.DATA_DIR!, 'bulk', 'jobs', id)))
    t.pass('the job\'s folder (both images of every photo) is gone')
  })

  t.test('VISION_ADAPTIVE_MIN_CONFIDENCE=HIGH: a MEDIUM LOW answer is asked again at HIGH', async t => {
    const app = await bulkApp(t, { ...await storage(), VISION_ADAPTIVE_MIN_CONFIDENCE: 'HIGH' })
    const before = fake.batches.length
    const job = await waitFor(app, await createJob(app, [photos[0]!, photos[1]!], 'ADAPTIVE'), ended)
    t.equal(job.counts.succeeded, 2)
    const batches = batchesSince(before)
    t.equal(batches.length, 2)
    t.same(batches[1]!.lines.map(line => line.custom_id), [`${nodeOf(job, 1).identification.id}:high`], 'the MEDIUM photo only')
    t.match(nodeOf(job, 0).identification, { looks: 1, detailUsed: 'LOW' })
    t.match(nodeOf(job, 1).identification, { looks: 2, detailUsed: 'HIGH', answer: CASES[1]!.answers.high.answer })
  })

  t.test('a second batch that fails: the unsure photos keep their LOW answers (looks 2), nothing asked online', async t => {
    const env = await storage()
    const app = await bulkApp(t, env)
    let creates = 0
    fake.batchFault = () => creates++ === 0 ? 'ok' : 'failed'
    const chats = fake.chatRequests.length
    const id = await createJob(app, [photos[0]!, photos[3]!], 'ADAPTIVE')
    const job = await waitFor(app, id, ended)
    t.equal(job.status, 'COMPLETED')
    t.same(job.counts, { total: 2, pending: 0, succeeded: 2, failed: 0, cancelled: 0 })
    t.equal(creates, 2, 'two batches asked for')
    t.equal(fake.chatRequests.length, chats, 'no online call')
    t.match(nodeOf(job, 0).identification, { looks: 1, detailUsed: 'LOW' })
    t.match(nodeOf(job, 1).identification, {
      looks: 2, detailUsed: 'LOW', answer: CASES[3]!.answers.low.answer, usage: { promptTokens: USAGE_TEXT_TOKENS + 85 }
    })
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).payload
    t.match(metrics, /agrivision_second_look_failures_total\{code="UPSTREAM_UNAVAILABLE"\} 1\n/)
    await waitUntil('the job\'s folder removed', () => !existsSync(join(env.DATA_DIR!, 'bulk', 'jobs', id)))
  })

  t.test('detail HIGH keeps one batch of HIGH lines, one look each', async t => {
    const app = await bulkApp(t, await storage())
    const before = fake.batches.length
    const job = await waitFor(app, await createJob(app, [photos[0]!, photos[3]!], 'HIGH'), ended)
    t.equal(job.counts.succeeded, 2)
    const batches = batchesSince(before)
    t.equal(batches.length, 1)
    for (const line of batches[0]!.lines) {
      t.equal(imageOf(line).detail, 'high')
      t.notOk(line.custom_id.includes(':'), 'custom_id = the item id')
    }
    for (const i of [0, 1]) t.match(nodeOf(job, i).identification, { looks: 1, detailUsed: 'HIGH' })
  })

  t.test('an ONLINE job (no batch deployment) takes the online adaptive path; no LOW file is kept', async t => {
    const env = await storage()
    const app = await bulkApp(t, env, false)
    const before = { chats: fake.chatRequests.length, batches: fake.batches.length }
    const id = await createJob(app, [photos[0]!, photos[3]!], 'ADAPTIVE')
    const job = await waitFor(app, id, ended)
    t.equal(job.counts.succeeded, 2)
    t.equal(fake.batches.length, before.batches, 'no batch')
    const { rows } = await bulkInternals(app.bulk as BulkJobs).store.listItems(id, 10, null, null)
    t.ok(rows.every(row => row.low_sent === null && row.look === 1), 'prepared at HIGH only: the flow makes its LOW image')
    const details = fake.chatRequests.slice(before.chats).map(record => imageFromChat(record).detail).sort()
    t.same(details, ['high', 'low', 'low'], 'the sure photo once at LOW, the unsure one at LOW then HIGH')
    t.match(nodeOf(job, 0).identification, { looks: 1, detailUsed: 'LOW' })
    t.match(nodeOf(job, 1).identification, { looks: 2, detailUsed: 'HIGH', answer: CASES[3]!.answers.high.answer })
  })

  /** A job (the server's default detail: ADAPTIVE) stopped between its phases: the LOW batch read, the HIGH one made and in progress. */
  async function betweenPhases (t: Test, app: FastifyInstance): Promise<{ id: string, highBatch: string }> {
    fake.batchTimeline = { validatingMs: 0, inProgressMs: 600_000, finalizingMs: 0, cancellingMs: 0 }
    const before = fake.batches.length
    const id = await createJob(app, photos)
    await waitUntil('the LOW batch', () => fake.batches.length > before)
    await fake.advanceBatch(String(fake.batches[before]!.id), 'completed')
    await waitUntil('the HIGH batch', () => fake.batches.length > before + 1)
    const highBatch = String(fake.batches[before + 1]!.id)
    t.equal(fake.batchInput(highBatch).length, UNSURE.length, 'the HIGH batch holds the unsure photos')
    await waitFor(app, id, job => job.counts.succeeded === SURE.length)
    return { id, highBatch }
  }

  t.test('cancel between the two phases: the sure photos keep their answers, the unsure ones end CANCELLED, the HIGH batch is cancelled', async t => {
    const env = await storage()
    const app = await bulkApp(t, env)
    const { id, highBatch } = await betweenPhases(t, app)
    const items = await bulkInternals(app.bulk as BulkJobs).store.itemsWithStatus(id, 'SUBMITTED', 100)
    t.equal(items.length, UNSURE.length)
    t.ok(items.every(item => item.look === 2 && item.first_look !== null), 'the unsure items wait for their HIGH look, their LOW answer kept')
    // The sure photos' images are gone with their answers; the unsure ones keep both (HIGH to send, LOW in case it fails).
    const files = preparedFiles(env.DATA_DIR!, id)
    t.same(files, items.flatMap(item => [item.id, `${item.id}.low`]).sort(), 'only the unsure photos\' two images are left')

    const cancels = fake.batchCancels
    t.notOk((await app.inject({ method: 'POST', url: '/graphql', payload: { query: `mutation { cancelBulkJob(id: "${id}") { id } }` } })).json().errors)
    const job = await waitFor(app, id, ended)
    t.equal(job.status, 'CANCELLED')
    t.same(job.counts, { total: 6, pending: 0, succeeded: 2, failed: 0, cancelled: 4 })
    for (const i of SURE) t.match(nodeOf(job, i), { status: 'SUCCEEDED', identification: { looks: 1, detailUsed: 'LOW' } })
    for (const i of UNSURE) t.match(nodeOf(job, i), { status: 'CANCELLED', identification: null })
    t.equal(fake.batchCancels, cancels + 1, 'the HIGH batch was cancelled at Azure')
    t.equal(fake.batches.find(batch => batch.id === highBatch)?.status, 'cancelled')
    await waitUntil('the job\'s folder removed', () => !existsSync(join(env.DATA_DIR!, 'bulk', 'jobs', id)))
    t.pass('no prepared image left')
  })

  t.test('a restart between the phases (the HIGH chunk written, its upload failing): the new instance sends it once, every photo answered once', async t => {
    const env = await storage()
    const first = await bulkApp(t, env)
    fake.batchTimeline = { validatingMs: 0, inProgressMs: 600_000, finalizingMs: 0, cancellingMs: 0 }
    const before = { batches: fake.batches.length, uploads: fake.fileCreates }
    const id = await createJob(first, photos)
    await waitUntil('the LOW batch', () => fake.batches.length > before.batches)
    // Uploads fail from now on: the HIGH chunk is written and stays WRITTEN.
    fake.fileFault = () => 'error'
    await fake.advanceBatch(String(fake.batches[before.batches]!.id), 'completed')
    const { store, worker } = bulkInternals(first.bulk as BulkJobs)
    await waitUntil('the HIGH chunk', async () => (await store.chunks(id)).some(chunk => chunk.look === 2))
    await worker.stop()
    const chunks = await store.chunks(id)
    t.same(chunks.map(chunk => [chunk.look, chunk.status]), [[1, 'DONE'], [2, 'WRITTEN']], 'the LOW chunk done, the HIGH one written')
    await first.close()
    t.equal(fake.batches.length, before.batches + 1, 'no HIGH batch yet')

    fake.fileFault = () => 'ok'
    fake.batchTimeline = { validatingMs: 0, inProgressMs: 0, finalizingMs: 0, cancellingMs: 0 }
    const second = await bulkApp(t, env)
    const job = await waitFor(second, id, ended)
    t.equal(job.status, 'COMPLETED')
    t.same(job.counts, { total: 6, pending: 0, succeeded: 6, failed: 0, cancelled: 0 })
    const batches = batchesSince(before.batches)
    t.equal(batches.length, 2, 'two batches in all')
    t.same(batches[1]!.lines.map(line => line.custom_id).sort(), UNSURE.map(i => `${nodeOf(job, i).identification.id}:high`).sort())
    CASES.forEach((c, i) => { t.match(nodeOf(job, i).identification, { looks: c.looks, detailUsed: c.detailUsed }, c.name) })
    assertExactlyOnce(t)
    const records = await graphql(second, `{ identifications(first: 20, filter: { bulkJobId: "${id}" }) { edges { node { id } } } }`)
    t.equal(records.identifications.edges.length, 6, 'one record per photo')
    await waitUntil('the job\'s folder removed', () => !existsSync(join(env.DATA_DIR!, 'bulk', 'jobs', id)))
    t.pass('no prepared image left')
  })
}
