// The GLOBAL_BATCH cases, on SQLite (test/bulk-global-batch.test.ts) and PostgreSQL (-postgres.test.ts).
// A bulk job end to end: createBulkJob → the worker prepares → the mode writes, uploads and
// submits the JSONL to the loopback fake's files and batches API (the real openai client, the real token
// provider) → polls → reads the results → failed and missing lines once online → COMPLETED; every batch status,
// cancel, and a restart that resumes from the persisted chunk state (adopting a batch created just before it).
import type { Test } from 'tap'
import { imageSize } from 'image-size'
import type { FastifyInstance } from 'fastify'
import { DEFAULT_ANSWER, FakeAzure, imageFromChat, type ChatFault, type ChatRequestRecord } from './fake-azure.ts'
import { buildAzureTestApp, tempDataDir } from '../helper.ts'
import { encodeParts, type Part } from './multipart.ts'
import * as images from './images.ts'
import { bulkInternals } from '../../src/bulk/plugin.ts'
import type { BulkJobs } from '../../src/bulk/public.ts'

const BATCH_DEPLOYMENT = 'gpt-4o-batch'
/** Every case, each app on a fresh data folder and the database `databaseEnv` gives (nothing: SQLite in it). */
export async function globalBatchCases (t: Test, databaseEnv: () => Promise<Record<string, string>> = async () => ({})): Promise<void> {
  const fake = await new FakeAzure().start()
  t.teardown(() => fake.close())

  interface JobView {
    id: string
    status: string
    mode: string
    counts: { total: number, pending: number, succeeded: number, failed: number, cancelled: number }
    usage: { promptTokens: number, completionTokens: number }
    items: { edges: Array<{ node: ItemView }> }
  }

  interface ItemView {
    name: string
    status: string
    code: string | null
    identification: { id: string, answer: string, bulkJobId: string } | null
  }

  /** An app on its own data folder and database, or on `env`'s (a restart). */
  async function bulkApp (t: Test, env?: Record<string, string>): Promise<FastifyInstance> {
    const { app } = await buildAzureTestApp(t, fake, {
      AZURE_OPENAI_BATCH_DEPLOYMENT: BATCH_DEPLOYMENT, BULK_POLL_INTERVAL_S: '1', ...(env ?? await storage())
    })
    return app
  }

  async function storage (): Promise<Record<string, string>> {
    return { DATA_DIR: tempDataDir(), ...await databaseEnv() }
  }

  /** Distinct photos (the fake answers each line by its instructions' number when a test asks it to). */
  async function photos (count: number): Promise<Buffer[]> {
    return await Promise.all(Array.from({ length: count }, async (_, i) => await images.png(40 + i, 30)))
  }

  async function createJob (app: FastifyInstance, files: Buffer[], mode = 'GLOBAL_BATCH'): Promise<string> {
    const operations = {
      query: 'mutation ($images: [Upload!]) { createBulkJob(images: $images, instructions: "Which tractor?", detail: LOW) { id status mode } }',
      variables: { images: files.map(() => null) }
    }
    const map = Object.fromEntries(files.map((_, i) => [String(i), [`variables.images.${i}`]]))
    const parts: Part[] = [['operations', JSON.stringify(operations)], ['map', JSON.stringify(map)],
      ...files.map((file, i): Part => [String(i), file, `photo-${i}.png`, 'image/png'])]
    const { payload, headers } = await encodeParts(parts)
    const res = await app.inject({ method: 'POST', url: '/graphql', payload, headers })
    const body = res.json()
    if (body.errors !== undefined) throw new Error(JSON.stringify(body.errors))
    if (body.data.createBulkJob.mode !== mode) throw new Error(`mode ${body.data.createBulkJob.mode}`)
    return body.data.createBulkJob.id
  }

  async function jobOf (app: FastifyInstance, id: string): Promise<JobView> {
    const res = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query: `query ($id: ID!) { bulkJob(id: $id) { id status mode counts { total pending succeeded failed cancelled }
        usage { promptTokens completionTokens }
        items(first: 100) { edges { node { name status code identification { id answer bulkJobId } } } } } }`,
        variables: { id }
      }
    })
    const body = res.json()
    if (body.errors !== undefined) throw new Error(JSON.stringify(body.errors))
    return body.data.bulkJob
  }

  /** Polls the job until `until` holds (or fails after 60 s), recording every status seen. */
  async function waitFor (app: FastifyInstance, id: string, until: (job: JobView) => boolean, seen: string[] = []): Promise<JobView> {
    const deadline = Date.now() + 60_000
    for (;;) {
      const job = await jobOf(app, id)
      if (seen.at(-1) !== job.status) seen.push(job.status)
      if (until(job)) return job
      if (Date.now() > deadline) throw new Error(`job still ${job.status}: ${JSON.stringify(job.counts)}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
  const ended = (job: JobView): boolean => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(job.status)

  /** A batch line's fate by its photo (photo i is 40 + i pixels wide); online calls (to /openai/…) are answered 'answered online'. */
  function batchLines (fault: (photoIndex: number) => ChatFault | undefined): (record: ChatRequestRecord) => ChatFault {
    return record => {
      if (record.path.startsWith('/openai/')) return { kind: 'ok', answer: 'answered online' }
      return fault((imageSize(imageFromChat(record).bytes).width ?? 0) - 40) ?? { kind: 'ok' }
    }
  }

  function assertExactlyOnce (t: Test, job: JobView): void {
    for (const { node } of job.items.edges) {
      if (node.identification !== null) t.equal(node.identification.bulkJobId, job.id)
    }
    t.ok([...fake.customIdsSubmitted.values()].every(count => count === 1), 'no custom_id submitted twice (fake.customIdsSubmitted all 1)')
  }

  t.beforeEach(() => {
    fake.chatFault = () => ({ kind: 'ok' })
    fake.batchFault = () => 'ok'
    fake.fileFault = () => 'ok'
    fake.batchTimeline = { validatingMs: 0, inProgressMs: 0, finalizingMs: 0, cancellingMs: 0 }
  })

  t.test('a job through Global Batch: one batch, the same answers as online, no online call, files deleted at Azure', async t => {
    const app = await bulkApp(t)
    fake.batchTimeline = { validatingMs: 700, inProgressMs: 1_500, finalizingMs: 0, cancellingMs: 0 }
    const before = {
      creates: fake.batchCreates, chats: fake.chatRequests.length, files: fake.filesHeld, lines: fake.batchLineRequests.length
    }
    const id = await createJob(app, await photos(5))
    const seen: string[] = []
    const job = await waitFor(app, id, ended, seen)
    t.equal(job.status, 'COMPLETED')
    t.equal(job.mode, 'GLOBAL_BATCH')
    t.same(job.counts, { total: 5, pending: 0, succeeded: 5, failed: 0, cancelled: 0 })
    t.ok(seen.includes('SUBMITTED') && seen.includes('RUNNING'), `statuses seen: ${seen.join(' → ')}`)
    t.ok(seen.indexOf('SUBMITTED') < seen.indexOf('RUNNING') && seen.indexOf('RUNNING') < seen.indexOf('COMPLETED'), 'in order')
    for (const { node } of job.items.edges) {
      t.equal(node.status, 'SUCCEEDED')
      t.equal(node.identification?.answer, DEFAULT_ANSWER.answer)
      t.equal(fake.customIdsSubmitted.get(node.identification!.id), 1, 'the identification id is the custom_id')
    }
    t.ok(job.usage.promptTokens > 0 && job.usage.completionTokens === 5 * 42, 'the batch usage counted')
    t.equal(fake.batchCreates, before.creates + 1, 'one batch')
    t.equal(fake.batchLineRequests.length, before.lines + 5, 'five lines answered by the batch')
    t.equal(fake.chatRequests.length, before.chats, 'no online call')
    t.equal(fake.filesHeld, before.files, 'input, output and error files deleted at Azure')
    const line = fake.batchLineRequests.at(-1)!
    t.equal(line.body.model, BATCH_DEPLOYMENT)
    t.equal(line.body.messages[1].content[1].image_url.detail, 'low', 'the job\'s detail')
    t.equal(line.body.messages[1].content[0].text, 'Which tractor?')
    t.ok(fake.batchRequests.every(r => r.apiKeyHeader === undefined && r.authorization?.startsWith('Bearer ')), 'bearer tokens only')
    assertExactlyOnce(t, job)

    // The identifications are in history with the job's id.
    const res = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: { query: `{ identifications(first: 10, filter: { bulkJobId: "${id}" }) { edges { node { id bulkJobId answer } } } }` }
    })
    t.equal(res.json().data.identifications.edges.length, 5)
  })

  t.test('line failures: retryable ones and missing lines once online, final ones FAILED with the online code', async t => {
    const app = await bulkApp(t)
    const files = await photos(6)
    fake.chatFault = batchLines(index => ({
      0: { kind: 'content-filter-prompt' } as ChatFault,
      1: { kind: 'status', status: 429 } as ChatFault,
      2: { kind: 'reset' } as ChatFault, // missing from the output
      3: { kind: 'schema-violation' } as ChatFault
    })[index])
    const online = fake.chatRequests.length
    const job = await waitFor(app, await createJob(app, files), ended)
    t.equal(job.status, 'COMPLETED')
    const byName = Object.fromEntries(job.items.edges.map(({ node }) => [node.name, node]))
    t.match(byName['images[0]'], { status: 'FAILED', code: 'CONTENT_FILTERED' }, 'filtered: not asked again')
    for (const i of [1, 2, 3]) t.match(byName[`images[${i}]`], { status: 'SUCCEEDED', identification: { answer: 'answered online' } }, `photo ${i} answered online`)
    for (const i of [4, 5]) t.match(byName[`images[${i}]`], { status: 'SUCCEEDED', identification: { answer: DEFAULT_ANSWER.answer } })
    t.equal(fake.chatRequests.length, online + 3, 'three online calls, one per retried photo')
    assertExactlyOnce(t, job)
  })

  t.test('usage: the batch\'s tokens in the batch columns at the batch prices (default half), an online retry\'s at the online prices', async t => {
    const app = await bulkApp(t, { ...await storage(), VISION_PRICE_INPUT_PER_MTOK: '10', VISION_PRICE_OUTPUT_PER_MTOK: '20' })
    fake.chatFault = batchLines(index => index === 0 ? { kind: 'status', status: 429 } : undefined)
    const started = Date.now()
    const id = await createJob(app, await photos(3))
    const job = await waitFor(app, id, ended)
    t.equal(job.counts.succeeded, 3)
    await app.history!.flushed()

    const graphql = async (query: string, variables: Record<string, unknown> = {}) => {
      const body = (await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })).json()
      if (body.errors !== undefined) throw new Error(JSON.stringify(body.errors))
      return body.data
    }
    const { identifications } = await graphql(`{ identifications(first: 10, filter: { bulkJobId: "${id}" }) {
      edges { node { answer usage { promptTokens completionTokens } } } } }`)
    const nodes = identifications.edges.map((edge: any) => edge.node)
    const sum = (list: any[], field: string) => list.reduce((total, node) => total + node.usage[field], 0)
    const batch = nodes.filter((node: any) => node.answer !== 'answered online')
    const online = nodes.filter((node: any) => node.answer === 'answered online')
    t.equal(batch.length, 2)
    t.equal(online.length, 1, 'the line that failed with 429 was answered online')
    const tokens = {
      promptTokens: sum(nodes, 'promptTokens'),
      completionTokens: sum(nodes, 'completionTokens'),
      batchPromptTokens: sum(batch, 'promptTokens'),
      batchCompletionTokens: sum(batch, 'completionTokens')
    }
    t.ok(tokens.batchPromptTokens > 0 && sum(online, 'promptTokens') > 0)
    // Online at 10 and 20 per million; the batch at half (VISION_BATCH_PRICE_* unset).
    const cost = ((tokens.promptTokens - tokens.batchPromptTokens) * 10 + (tokens.completionTokens - tokens.batchCompletionTokens) * 20 +
      tokens.batchPromptTokens * 5 + tokens.batchCompletionTokens * 10) / 1e6

    await assertUsage(t, app, started, tokens, cost)
  })

  t.test('usage: an ONLINE job (no batch deployment) is priced online, nothing in the batch columns', async t => {
    const { app } = await buildAzureTestApp(t, fake, { ...await storage(), VISION_PRICE_INPUT_PER_MTOK: '10', VISION_PRICE_OUTPUT_PER_MTOK: '20' })
    const started = Date.now()
    const lines = fake.batchLineRequests.length
    const job = await waitFor(app, await createJob(app, await photos(2), 'ONLINE'), ended)
    t.equal(job.counts.succeeded, 2)
    t.equal(fake.batchLineRequests.length, lines, 'no batch line')
    await app.history!.flushed()
    const { promptTokens, completionTokens } = job.usage
    const tokens = { promptTokens, completionTokens, batchPromptTokens: 0, batchCompletionTokens: 0 }
    t.ok(tokens.promptTokens > 0)
    await assertUsage(t, app, started, tokens, (tokens.promptTokens * 10 + tokens.completionTokens * 20) / 1e6)
  })

  /** usage since `started`, over whole days (usage_daily) and over the minutes of the job (the records), has these tokens and cost. */
  async function assertUsage (
    t: Test, app: FastifyInstance, started: number,
    tokens: { promptTokens: number, completionTokens: number, batchPromptTokens: number, batchCompletionTokens: number }, cost: number
  ): Promise<void> {
    const dayMs = 86_400_000
    const firstDay = Math.floor(started / dayMs) * dayMs
    for (const [from, to, what] of [
      [firstDay, Math.ceil((Date.now() + 1) / dayMs) * dayMs, 'whole days: usage_daily\'s batch columns'],
      [started - 1_000, Date.now() + 1_000, 'partial days: the records\' batch flag']
    ] as const) {
      const query = `query ($from: DateTime!, $to: DateTime!) {
        usage(from: $from, to: $to) { promptTokens completionTokens batchPromptTokens batchCompletionTokens estimatedCost } }`
      const variables = { from: new Date(from).toISOString(), to: new Date(to).toISOString() }
      const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
      const usage = res.json().data.usage
      const total = (field: string) => usage.reduce((sum: number, bucket: any) => sum + bucket[field], 0)
      t.strictSame({
        promptTokens: total('promptTokens'),
        completionTokens: total('completionTokens'),
        batchPromptTokens: total('batchPromptTokens'),
        batchCompletionTokens: total('batchCompletionTokens')
      }, tokens, what)
      t.ok(Math.abs(total('estimatedCost') - cost) < 1e-5, `${what}: cost ${total('estimatedCost')} ≈ ${cost}`)
    }
  }

  for (const status of ['failed', 'expired'] as const) {
    t.test(`a batch that ends ${status}: what it did not answer goes online once`, async t => {
      const app = await bulkApp(t)
      fake.batchFault = () => status
      fake.chatFault = batchLines(() => undefined)
      const online = fake.chatRequests.length
      const job = await waitFor(app, await createJob(app, await photos(4)), ended)
      t.equal(job.status, 'COMPLETED')
      t.equal(job.counts.succeeded, 4)
      const answers = job.items.edges.map(({ node }) => node.identification?.answer)
      const viaOnline = answers.filter(answer => answer === 'answered online').length
      t.equal(viaOnline, status === 'failed' ? 4 : 2, status === 'failed' ? 'every photo online' : 'the unanswered half online')
      t.equal(fake.chatRequests.length, online + viaOnline)
      assertExactlyOnce(t, job)
    })
  }

  t.test('the batch quota full at create (token_limit_exceeded): submitted again at the next poll', async t => {
    const app = await bulkApp(t)
    let refused = 0
    fake.batchFault = () => refused++ === 0 ? 'token_limit_exceeded' : 'ok'
    const creates = fake.batchCreates
    const job = await waitFor(app, await createJob(app, await photos(2)), ended)
    t.equal(job.status, 'COMPLETED')
    t.equal(job.counts.succeeded, 2)
    t.equal(refused, 2, 'refused once, then made')
    t.equal(fake.batchCreates, creates + 1)
    assertExactlyOnce(t, job)
  })

  t.test('cancelBulkJob cancels the batch at Azure; unanswered items CANCELLED', async t => {
    const app = await bulkApp(t)
    fake.batchTimeline = { validatingMs: 0, inProgressMs: 600_000, finalizingMs: 0, cancellingMs: 0 }
    const cancels = fake.batchCancels
    const id = await createJob(app, await photos(3))
    await waitFor(app, id, job => job.status === 'RUNNING')
    const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query: `mutation { cancelBulkJob(id: "${id}") { id } }` } })
    t.notOk(res.json().errors)
    const job = await waitFor(app, id, ended)
    t.equal(job.status, 'CANCELLED')
    t.same(job.counts, { total: 3, pending: 0, succeeded: 0, failed: 0, cancelled: 3 })
    t.equal(fake.batchCancels, cancels + 1, 'Azure\'s cancel was called')
    t.equal(fake.batches.at(-1)?.status, 'cancelled')
  })

  t.test('a restart resumes from the chunk state: a batch created just before the crash is adopted, every photo once', async t => {
    const env = await storage()
    fake.batchTimeline = { validatingMs: 0, inProgressMs: 600_000, finalizingMs: 0, cancellingMs: 0 }
    const creates = fake.batchCreates
    const first = await bulkApp(t, env)
    const id = await createJob(first, await photos(4))
    await waitFor(first, id, job => job.status === 'RUNNING')
    // The instance dies right after Azure made the batch, before the batch id was stored: the chunk is left UPLOADED.
    const { worker, store } = bulkInternals(first.bulk as BulkJobs)
    await worker.stop()
    const [chunk] = await store.chunks(id)
    t.equal(chunk?.status, 'POLLING')
    await store.updateChunk(chunk!.id, { status: 'UPLOADED', batch_id: null })
    await first.close()

    const second = await bulkApp(t, env)
    // Wait until the second instance has adopted the batch, then let Azure finish it.
    const deadline = Date.now() + 30_000
    while ((await bulkInternals(second.bulk as BulkJobs).store.chunks(id))[0]?.status !== 'POLLING' && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    const batch = fake.batches.at(-1)!
    await fake.advanceBatch(String(batch.id), 'completed')
    const job = await waitFor(second, id, ended)
    t.equal(job.status, 'COMPLETED')
    t.equal(job.counts.succeeded, 4)
    t.equal(fake.batchCreates, creates + 1, 'one batch: adopted, not made again')
    assertExactlyOnce(t, job)
  })

  t.test('a cancel after such a crash finds the batch by its chunk id and cancels it at Azure', async t => {
    const env = await storage()
    fake.batchTimeline = { validatingMs: 0, inProgressMs: 600_000, finalizingMs: 0, cancellingMs: 0 }
    const first = await bulkApp(t, env)
    const id = await createJob(first, await photos(2))
    await waitFor(first, id, job => job.status === 'RUNNING')
    const { worker, store } = bulkInternals(first.bulk as BulkJobs)
    await worker.stop()
    const [chunk] = await store.chunks(id)
    await store.updateChunk(chunk!.id, { status: 'UPLOADED', batch_id: null })
    await store.requestCancel(id, null)
    await first.close()
    const cancels = fake.batchCancels
    const second = await bulkApp(t, env)
    const job = await waitFor(second, id, ended)
    t.equal(job.status, 'CANCELLED')
    t.equal(job.counts.cancelled, 2)
    t.equal(fake.batchCancels, cancels + 1, 'the unrecorded batch was cancelled at Azure')
    t.equal(fake.batches.at(-1)?.status, 'cancelled')
  })
}
