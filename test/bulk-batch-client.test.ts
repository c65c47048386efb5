// The Global Batch client (src/bulk/global-batch/): the real openai client against the loopback fake's files
// and batches API, on both URL shapes, with the JSONL writer and the results reader around it.
import t from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import pino from 'pino'
import { DEFAULT_ANSWER, FakeAzure, type BatchFault, type ChatFault } from './support/fake-azure.ts'
import * as images from './support/images.ts'
import { createAzureTokens } from '../src/azure/credential.ts'
import type { AzureConfig } from '../src/azure/config.ts'
import { createBatchClient, chunkFileName, stateOf, type BatchClient, type BatchClientOptions } from '../src/bulk/global-batch/client.ts'
import { JsonlWriter, LineTooLargeError, type ChunkFile } from '../src/bulk/global-batch/jsonl.ts'
import { readResults, type ItemOutcome, type ResultStats } from '../src/bulk/global-batch/results.ts'
import { splitLines, type Line } from '../src/bulk/global-batch/lines.ts'
import { AppError } from '../src/errors.ts'

const BATCH_DEPLOYMENT = 'gpt-4o-batch'
const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
process.env.AZURE_OPENAI_API_KEY = 'this-key-must-never-be-used'
fake.applyIdentityEnv()

// Everything the token provider and the client log, to check no token is in it.
const logged: string[] = []
const log = pino({ level: 'debug' }, new Writable({ write (chunk, _encoding, done) { logged.push(String(chunk)); done() } }))
const azure = { backends: [], scope: 'https://cognitiveservices.azure.com/.default', tokenTimeoutMs: 5_000 } satisfies AzureConfig
const tokens = createAzureTokens(azure, log).forScope(azure.scope, 'vision')

const dir = await mkdtemp(join(tmpdir(), 'bulk-batch-client-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))

const photo = await images.png(40, 30)

function client (apiVersion = 'v1', options: Partial<BatchClientOptions> = {}): BatchClient {
  return createBatchClient({ endpoint: fake.origin, apiVersion, tokens, filePollIntervalMs: 10, ...options })
}

/** A chunk file of `count` items (ids are fresh UUIDs) written by the real writer. */
async function writeChunk (batch: BatchClient, count: number, options: { maxLines?: number, maxBytes?: number } = {}) {
  const writer = new JsonlWriter({
    dir, deployment: BATCH_DEPLOYMENT, url: batch.chatUrl, maxTokens: 500, nextChunkId: () => randomUUID(), ...options
  })
  for (let i = 0; i < count; i++) {
    await writer.add(randomUUID(), { image: photo, mimeType: 'image/png', detail: 'low', instructions: `Which tractor? (${i})`, language: 'en' })
  }
  return await writer.finish()
}

/** Every outcome of a finished batch, by item id. */
async function outcomesOf (
  batch: BatchClient, state: { outputFileId: string | null, errorFileId: string | null }, itemIds: Iterable<string>,
  stats?: ResultStats, extra: AsyncIterable<Line>[] = []
): Promise<Map<string, ItemOutcome>> {
  const files = [state.outputFileId, state.errorFileId].filter((id): id is string => id !== null).map(id => batch.lines(id))
  const outcomes = new Map<string, ItemOutcome>()
  const options = { itemIds: new Set(itemIds), deployment: BATCH_DEPLOYMENT, pageSize: 7, stats }
  for await (const page of readResults([...files, ...extra], options)) {
    if (page.length > 7) throw new Error(`a page of ${page.length} outcomes, more than its 7`)
    for (const outcome of page) outcomes.set(outcome.itemId, outcome)
  }
  return outcomes
}

/** Upload, create, and the batch's state as created. */
async function submit (batch: BatchClient, chunk: ChunkFile) {
  const file = await batch.uploadJsonl(chunk.path, chunk.chunkId)
  return { file, created: await batch.create(file.id, chunk.chunkId) }
}

t.beforeEach(() => {
  fake.chatFault = () => ({ kind: 'ok' })
  fake.batchFault = () => 'ok'
  fake.fileFault = () => 'ok'
  fake.batchTimeline = { validatingMs: 0, inProgressMs: 0, finalizingMs: 0, cancellingMs: 0 }
  fake.batchIsoTimes = false
})

for (const apiVersion of ['v1', '2024-10-21']) {
  t.test(`${apiVersion}: upload, create, poll, read: the same answers as online, bearer only, no deployment path`, async t => {
    const batch = client(apiVersion)
    const [chunk] = await writeChunk(batch, 5)
    const before = fake.batchRequests.length
    const { file, created } = await submit(batch, chunk!)
    t.equal(file.status, 'processed', 'the upload was awaited until processed')
    t.equal(created.status, 'validating')
    t.equal(created.chunkId, chunk!.chunkId, 'the chunk id rides in the metadata')
    const uploaded = fake.fileContent(file.id)!
    t.equal(uploaded.filename, chunkFileName(chunk!.chunkId))
    t.not(uploaded.content[0], 0xef, 'no BOM')
    const lines = uploaded.content.toString('utf8').trimEnd().split('\n').map(line => JSON.parse(line))
    t.same(lines.map(line => line.custom_id), chunk!.itemIds, 'one line per item, custom_id = item id')
    t.ok(lines.every(line => line.method === 'POST' && line.url === batch.chatUrl && line.body.model === BATCH_DEPLOYMENT), 'one url and one deployment')
    t.equal(batch.chatUrl, apiVersion === 'v1' ? '/v1/chat/completions' : '/chat/completions')
    t.equal(lines[0].body.response_format.json_schema.strict, true, 'the online request body: strict structured output')
    t.match(lines[0].body.messages[1].content[1].image_url.url, /^data:image\/png;base64,/)
    t.ok(Buffer.from(lines[0].body.messages[1].content[1].image_url.url.split(',')[1], 'base64').equals(photo), 'the image bytes spliced whole')

    const done = await batch.retrieve(created.id)
    t.equal(done.status, 'completed')
    t.same(done.requestCounts, { total: 5, completed: 5, failed: 0 })
    t.ok(done.outputFileId && done.errorFileId, 'a completed batch has an output and an (empty) error file')
    const outcomes = await outcomesOf(batch, done, chunk!.itemIds)
    t.equal(outcomes.size, 5)
    for (const outcome of outcomes.values()) {
      t.ok(outcome.ok)
      if (!outcome.ok) continue
      const { answer, vehicles, imageQuality } = outcome.result
      t.same({ answer, vehicles, imageQuality }, DEFAULT_ANSWER)
      t.equal(outcome.result.model, 'gpt-4o-2024-11-20')
      t.same(outcome.result.usage, { promptTokens: 1002, completionTokens: 42, totalTokens: 1044 }, 'the usage as online reads it')
    }

    const requests = fake.batchRequests.slice(before)
    const prefix = apiVersion === 'v1' ? '/openai/v1/' : '/openai/'
    t.ok(requests.every(r => r.path.startsWith(prefix) && !r.path.includes('/deployments/')), `every call under ${prefix}, none under /deployments/`)
    t.ok(requests.every(r => r.apiVersion === (apiVersion === 'v1' ? null : apiVersion)), 'api-version only on the dated shape')
    t.ok(requests.every(r => /^Bearer fake-access-token-/.test(r.authorization ?? '') && r.apiKeyHeader === undefined), 'a bearer token, never an api-key')
    t.ok(requests.some(r => r.method === 'POST' && r.path === `${prefix}files`) && requests.some(r => r.method === 'POST' && r.path === `${prefix}batches`))

    const held = fake.filesHeld
    for (const id of [file.id, done.outputFileId!, done.errorFileId!]) await batch.deleteFile(id)
    await batch.deleteFile(file.id) // gone already: fine
    t.equal(fake.filesHeld, held - 3, 'input, output and error files deleted')
  })
}

t.test('a client built with a deployment would send /batches under /deployments/: the fake refuses that path (404)', async t => {
  const res = await fetch(`${fake.origin}/openai/deployments/${BATCH_DEPLOYMENT}/batches?api-version=2024-10-21`, {
    method: 'POST', headers: { authorization: `Bearer ${await tokens.getToken()}`, 'content-type': 'application/json' }, body: '{}'
  })
  t.equal(res.status, 404)
})

t.test('every status on the way: validating → in_progress → finalizing → completed, read as Azure writes them', async t => {
  for (const iso of [false, true]) {
    fake.batchIsoTimes = iso
    fake.batchTimeline = { validatingMs: 60_000, inProgressMs: 60_000, finalizingMs: 60_000, cancellingMs: 0 }
    const batch = client('2024-10-21')
    const [chunk] = await writeChunk(batch, 2)
    const { created } = await submit(batch, chunk!)
    t.equal(created.status, 'validating', `validating (${iso ? '"Validating", ISO times' : 'unix seconds'})`)
    t.ok(created.createdAtMs !== null && Math.abs(created.createdAtMs - Date.now()) < 5_000, 'created_at read as ms either way')
    t.equal((await batch.retrieve(created.id)).status, 'validating', 'stays until its time is up')
    for (const status of ['in_progress', 'finalizing', 'completed'] as const) {
      await fake.advanceBatch(created.id, status)
      const state = await batch.retrieve(created.id)
      t.equal(state.status, status)
      if (status === 'completed') {
        t.ok(state.endedAtMs !== null)
        t.equal((await outcomesOf(batch, state, chunk!.itemIds)).size, 2)
      }
    }
  }
})

t.test('the timeline knobs move a batch by themselves', async t => {
  fake.batchTimeline = { validatingMs: 400, inProgressMs: 400, finalizingMs: 400, cancellingMs: 0 }
  const batch = client()
  const [chunk] = await writeChunk(batch, 1)
  const { created } = await submit(batch, chunk!)
  const seen: string[] = []
  for (let i = 0; i < 200 && seen.at(-1) !== 'completed'; i++) {
    const { status } = await batch.retrieve(created.id)
    if (seen.at(-1) !== status) seen.push(status)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.same(seen, ['validating', 'in_progress', 'finalizing', 'completed'], 'each in turn, in order')
})

t.test('validation failures: failed with errors.data, no files to read', async t => {
  const batch = client()
  const cases: Array<{ name: string, content: (lines: string[]) => Buffer, code: string }> = [
    { name: 'BOM', content: lines => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(lines.join(''))]), code: 'invalid_json_line' },
    { name: 'duplicate custom_id', content: lines => Buffer.from(lines[0]! + lines[0]!), code: 'duplicate_custom_id' },
    { name: 'not JSON', content: lines => Buffer.from(lines[0]! + '{"custom_id":\n'), code: 'invalid_json_line' },
    { name: 'another url', content: lines => Buffer.from(lines[0]! + lines[1]!.replace(batch.chatUrl, '/embeddings')), code: 'url_mismatch' },
    { name: 'another model', content: lines => Buffer.from(lines[0]! + lines[1]!.replace(`"model":"${BATCH_DEPLOYMENT}"`, '"model":"other"')), code: 'model_mismatch' },
    { name: 'not a batch deployment', content: lines => Buffer.from(lines.join('').replaceAll(`"model":"${BATCH_DEPLOYMENT}"`, '"model":"gpt-4o-standard"')), code: 'model_not_found' }
  ]
  const [chunk] = await writeChunk(batch, 2)
  const lines = (await readFile(chunk!.path, 'utf8')).split(/(?<=\n)/)
  for (const { name, content, code } of cases) {
    const chunkId = randomUUID()
    const path = join(dir, `${chunkId}.jsonl`)
    await writeFile(path, content(lines))
    const { created } = await submit(batch, { chunkId, path, lines: 2, bytes: 0, itemIds: [] })
    const state = await batch.retrieve(created.id)
    t.equal(state.status, 'failed', name)
    t.equal(state.errors[0]?.code, code, `${name}: ${code}`)
    t.equal(state.outputFileId, null)
  }
  fake.maxBatchLines = 1
  const { created } = await submit(batch, chunk!)
  t.equal((await batch.retrieve(created.id)).errors[0]?.code, 'too_many_tasks')
  fake.maxBatchLines = 100_000
})

t.test('failed and expired while running; cancel (slow and quick)', async t => {
  const batch = client()
  fake.batchFault = () => 'failed'
  const [a] = await writeChunk(batch, 2)
  const failed = await batch.retrieve((await submit(batch, a!)).created.id)
  t.equal(failed.status, 'failed')
  t.equal(failed.errors[0]?.code, 'internal_error')

  fake.batchFault = () => 'expired'
  const [b] = await writeChunk(batch, 4)
  const expired = await batch.retrieve((await submit(batch, b!)).created.id)
  t.equal(expired.status, 'expired')
  const outcomes = await outcomesOf(batch, expired, b!.itemIds)
  t.equal(outcomes.size, 4, 'an expired batch answers what it did; the rest are in the error file')
  const failedLines = [...outcomes.values()].filter(o => !o.ok)
  t.equal(failedLines.length, 2)
  t.ok(failedLines.every(o => !o.ok && o.error.code === 'UPSTREAM_UNAVAILABLE' && o.retryOnline && /batch_expired/.test(o.error.message)), 'batch_expired: retried online')

  fake.batchFault = () => 'cancel-slow'
  fake.batchTimeline = { validatingMs: 0, inProgressMs: 600_000, finalizingMs: 0, cancellingMs: 0 }
  const [c] = await writeChunk(batch, 2)
  const { created } = await submit(batch, c!)
  t.equal((await batch.retrieve(created.id)).status, 'in_progress')
  t.equal((await batch.cancel(created.id)).status, 'cancelling')
  t.equal((await batch.retrieve(created.id)).status, 'cancelling', 'a cancel may take its time')
  await fake.advanceBatch(created.id, 'cancelled')
  const cancelled = await batch.retrieve(created.id)
  t.equal(cancelled.status, 'cancelled')
  const lines = await outcomesOf(batch, cancelled, c!.itemIds)
  t.ok([...lines.values()].every(o => !o.ok && /batch_cancelled/.test(o.error.message)))

  fake.batchFault = () => 'ok'
  const [d] = await writeChunk(batch, 1)
  const quick = await submit(batch, d!)
  t.equal((await batch.cancel(quick.created.id)).status, 'cancelled', 'cancelled at once when cancellingMs is 0')
})

t.test('lines in any order, error lines mapped to the online codes, unknown / repeated / missing / unreadable lines', async t => {
  const batch = client()
  const [chunk] = await writeChunk(batch, 30)
  const ids = chunk!.itemIds
  const faults: Record<number, ChatFault> = {
    1: { kind: 'content-filter-prompt' },
    2: { kind: 'status', status: 429 },
    3: { kind: 'schema-violation' },
    4: { kind: 'reset' },
    5: { kind: 'refusal' },
    6: { kind: 'status', status: 500 }
  }
  fake.chatFault = (record) => faults[Number(/\((\d+)\)/.exec(record.body.messages[1].content[0].text)?.[1])] ?? { kind: 'ok' }
  const done = await batch.retrieve((await submit(batch, chunk!)).created.id)
  t.equal(done.status, 'completed')
  const outputOrder: string[] = []
  for await (const line of batch.lines(done.outputFileId!)) if (line.kind === 'line') outputOrder.push(JSON.parse(line.text).custom_id)
  t.notSame(outputOrder, ids.filter(id => outputOrder.includes(id)), 'the output file is not in input order')

  const stats: ResultStats = { unknown: 0, repeated: 0, unreadable: 0 }
  async function * strays (): AsyncGenerator<Line> {
    yield { kind: 'line', text: JSON.stringify({ custom_id: 'not-ours', response: { status_code: 200, body: {} } }) }
    yield { kind: 'line', text: JSON.stringify({ custom_id: ids[0], response: { status_code: 500, body: {} } }) }
    yield { kind: 'line', text: '{not json' }
  }
  const outcomes = await outcomesOf(batch, done, ids, stats, [strays()])
  t.same(stats, { unknown: 1, repeated: 1, unreadable: 1 })
  t.equal(outcomes.size, 29, 'the reset line is missing: the caller finds it by its absence')
  t.notOk(outcomes.has(ids[4]!))
  const code = (i: number) => { const o = outcomes.get(ids[i]!)!; return o.ok ? 'OK' : `${o.error.code}${o.retryOnline ? ' (retry online)' : ''}` }
  t.equal(code(0), 'OK', 'the first line for an id counts')
  t.equal(code(1), 'CONTENT_FILTERED')
  t.equal(code(2), 'UPSTREAM_RATE_LIMITED (retry online)')
  t.equal(code(3), 'UPSTREAM_INVALID_RESPONSE (retry online)')
  t.equal(code(5), 'MODEL_REFUSED')
  t.equal(code(6), 'UPSTREAM_UNAVAILABLE (retry online)')
  t.equal([...outcomes.values()].filter(o => o.ok).length, 24)
})

t.test('a result line over the bound is never held whole; its item ends as an invalid response', async t => {
  const batch = client('v1', { maxLineBytes: 32_768 })
  const [chunk] = await writeChunk(batch, 3)
  fake.chatFault = (record) => /\(1\)/.test(record.body.messages[1].content[0].text) ? { kind: 'ok', answer: 'x'.repeat(100_000) } : { kind: 'ok' }
  const done = await batch.retrieve((await submit(batch, chunk!)).created.id)
  const stats: ResultStats = { unknown: 0, repeated: 0, unreadable: 0 }
  const outcomes = await outcomesOf(batch, done, chunk!.itemIds, stats)
  const long = outcomes.get(chunk!.itemIds[1]!)!
  t.ok(!long.ok && long.error.code === 'UPSTREAM_INVALID_RESPONSE' && long.retryOnline)
  t.equal(stats.unreadable, 1)
  t.ok(outcomes.get(chunk!.itemIds[0]!)!.ok && outcomes.get(chunk!.itemIds[2]!)!.ok)

  // The splitter on its own: pieces across chunk edges, CRLF, a blank line, a long line between short ones.
  async function * pieces () { for (const piece of ['{"a":1}\r', '\n\n{"custom_id":"abc","x":"', 'y'.repeat(50), '"}\n{"b"', ':2}']) yield Buffer.from(piece) }
  const split: Line[] = []
  for await (const line of splitLines(pieces(), 40)) split.push(line)
  t.same(split, [{ kind: 'line', text: '{"a":1}' }, { kind: 'too-long', bytes: 76, customId: 'abc' }, { kind: 'line', text: '{"b":2}' }])
})

t.test('the writer: never over its line or byte limit, never splits a line, refuses a line larger than a file', async t => {
  const batch = client()
  const byLines = await writeChunk(batch, 7, { maxLines: 3 })
  t.same(byLines.map(c => c.lines), [3, 3, 1])
  const [one] = await writeChunk(batch, 1)
  const lineBytes = one!.bytes
  const byBytes = await writeChunk(batch, 5, { maxBytes: lineBytes * 2 + 10 })
  t.same(byBytes.map(c => c.lines), [2, 2, 1])
  for (const chunk of [...byLines, ...byBytes]) {
    const content = await readFile(chunk.path)
    t.equal(content.length, chunk.bytes)
    if (byBytes.includes(chunk)) t.ok(content.length <= lineBytes * 2 + 10, 'within maxBytes')
    t.same(content.toString('utf8').trimEnd().split('\n').map(line => JSON.parse(line).custom_id), chunk.itemIds, 'whole lines only')
  }
  const writer = new JsonlWriter({
    dir, deployment: BATCH_DEPLOYMENT, url: batch.chatUrl, maxTokens: 500, maxBytes: 1_000, nextChunkId: () => randomUUID()
  })
  await t.rejects(writer.add(randomUUID(), { image: photo, mimeType: 'image/png', detail: 'low', instructions: 'x', language: 'en' }), LineTooLargeError)
  await t.rejects(writer.add('bad"id', { image: photo, mimeType: 'image/png', detail: 'low', instructions: 'x', language: 'en' }), /custom_id/)
  await writer.abort()
})

t.test('token_limit_exceeded at create: UPSTREAM_RATE_LIMITED and no batch; the next create succeeds', async t => {
  const batch = client('2024-10-21')
  const [chunk] = await writeChunk(batch, 3)
  const file = await batch.uploadJsonl(chunk!.path, chunk!.chunkId)
  const creates = fake.batchCreates
  let attempts = 0
  fake.batchFault = () => attempts++ === 0 ? 'token_limit_exceeded' : 'ok'
  const error = await batch.create(file.id, chunk!.chunkId).then(() => null, (err: unknown) => err)
  t.ok(error instanceof AppError)
  t.equal((error as AppError).code, 'UPSTREAM_RATE_LIMITED')
  t.equal(fake.batchCreates, creates, 'no batch made')
  const created = await batch.create(file.id, chunk!.chunkId)
  t.equal(created.status, 'validating')
  t.equal(fake.batchCreates, creates + 1)
  t.ok(chunk!.itemIds.every(id => fake.customIdsSubmitted.get(id) === 1))
})

for (const apiVersion of ['v1', '2024-10-21']) {
  t.test(`${apiVersion}: a lost reply, or a restart after create, adopts the batch and the file: one of each, every custom_id once`, async t => {
    const batch = client(apiVersion)
    const [chunk] = await writeChunk(batch, 4)
    const fileCreates = fake.fileCreates
    fake.fileFault = () => 'drop-reply'
    const file = await batch.uploadJsonl(chunk!.path, chunk!.chunkId)
    fake.fileFault = () => 'ok'
    t.equal(fake.fileCreates, fileCreates + 1, 'the dropped upload is found by its name, not sent again')
    t.equal(file.status, 'processed')

    const creates = fake.batchCreates
    const attempts = fake.batchCreateAttempts
    let dropped = 0
    fake.batchFault = (): BatchFault => dropped++ === 0 ? 'drop-reply' : 'ok'
    const created = await batch.create(file.id, chunk!.chunkId)
    t.equal(fake.batchCreateAttempts, attempts + 1, 'create is not retried by the SDK (maxRetries 0)')
    t.equal(fake.batchCreates, creates + 1, 'one batch')
    t.equal(created.chunkId, chunk!.chunkId)

    // A restarted instance (a new client) asks again for the same chunk: it adopts what is there.
    const restarted = client(apiVersion)
    t.equal((await restarted.uploadJsonl(chunk!.path, chunk!.chunkId)).id, file.id)
    t.equal((await restarted.create(file.id, chunk!.chunkId)).id, created.id)
    t.equal(fake.batchCreates, creates + 1, 'still one batch')
    t.equal(fake.fileCreates, fileCreates + 1, 'still one file')
    t.ok(chunk!.itemIds.every(id => fake.customIdsSubmitted.get(id) === 1), 'customIdsSubmitted all 1')
  })
}

t.test('the search pages through a long list of batches (newest first)', async t => {
  const batch = client()
  const [first] = await writeChunk(batch, 1)
  const { file, created } = await submit(batch, first!)
  // 120 more batches, newer than the one we look for, on the same tiny file.
  for (let i = 0; i < 120; i++) await batch.create(file.id, randomUUID())
  const pages = fake.listPages
  const found = await batch.find(first!.chunkId)
  t.equal(found?.id, created.id)
  t.ok(fake.listPages - pages >= 2, 'more than one page read')
  t.equal(await batch.find(randomUUID()), null, 'a chunk never submitted: none')
  const limited = client('v1', { maxSearchPages: 1 })
  t.equal(await limited.find(first!.chunkId), null, 'the search is bounded')
})

t.test('no token in any error or log line', async t => {
  const batch = client('2024-10-21')
  const failures: unknown[] = []
  for (const attempt of [
    () => batch.retrieve('batch_missing'),
    () => batch.create('file-missing', randomUUID()),
    () => batch.cancel('batch_missing'),
    async () => { for await (const line of batch.lines('file-missing')) void line }
  ]) failures.push(await attempt().then(() => null, (err: unknown) => err))
  fake.batchFault = () => 'token_limit_exceeded'
  const [chunk] = await writeChunk(batch, 1)
  const file = await batch.uploadJsonl(chunk!.path, chunk!.chunkId)
  failures.push(await batch.create(file.id, chunk!.chunkId).then(() => null, (err: unknown) => err))
  t.ok(failures.every(err => err instanceof AppError), 'every failure is one of our errors')
  const token = await tokens.getToken()
  t.ok(tokens.stats.fetches >= 1)
  const text = failures.map(err => { const e = err as AppError; return `${e.message} ${JSON.stringify(e.extensions)} ${String(e.stack)}` }).join('\n') + logged.join('')
  t.notOk(text.includes(token), 'the token is nowhere')
  t.notOk(text.includes('fake-access-token'), 'no token at all')
  t.notOk(text.includes('this-key-must-never-be-used'))
  t.ok(logged.length > 0, 'the log was written (the token fetch)')
})

t.test('stateOf reads both shapes and refuses an unknown status', async t => {
  t.match(stateOf({ id: 'b', status: 'In_Progress', created_at: '2026-01-02T03:04:05Z', request_counts: { total: 3, completed: 1, failed: 0 }, errors: null }),
    { status: 'in_progress', createdAtMs: Date.parse('2026-01-02T03:04:05Z'), requestCounts: { total: 3, completed: 1, failed: 0 } })
  t.match(stateOf({ id: 'b', status: 'completed', created_at: 1_700_000_000, completed_at: 1_700_000_100 }), { createdAtMs: 1_700_000_000_000, endedAtMs: 1_700_000_100_000 })
  t.throws(() => stateOf({ id: 'b', status: 'exploded' }), { code: 'UPSTREAM_UNAVAILABLE' })
})
