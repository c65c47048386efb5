// ADAPTIVE detail against the real Azure backend and a loopback fake Azure: a LOW look first, a HIGH one only
// when the first answer is unsure (every reason), both looks one identification (one record, one event, one
// idempotency key, both usages), the result cache across details, a failed or abandoned second look, the HIGH
// image abandoned when not needed, and the simulated backend's one look and two looks.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import sharp from 'sharp'
import { pino } from 'pino'
import { buildAzureTestApp, buildTestApp, testConfig } from './helper.ts'
import { DEFAULT_ANSWER, FakeAzure, imageFromChat, imageTokensOf, USAGE_COMPLETION_TOKENS, USAGE_TEXT_TOKENS, type ChatFault } from './support/fake-azure.ts'
import { encodeParts, type Part } from './support/multipart.ts'
import { sendJson, send, type Answer } from './support/http.ts'
import { jpeg } from './support/images.ts'
import { createDatabase, startPostgres } from './support/postgres.ts'
import type { VisionAnswer } from '../src/vision/answer-schema.ts'
import { needsCloserLook } from '../src/identification/adaptive.ts'
import { identifyVehicle } from '../src/identification/flow.ts'
import { IdentificationEvents, type IdentificationCompleted } from '../src/identification/events.ts'
import { createImagePipeline, type ImagePipeline } from '../src/image/pipeline.ts'
import { inspectImage } from '../src/image/inspect.ts'
import { estimateImageTokens } from '../src/image/tokens.ts'
import { AdmissionGate } from '../src/limits/admission.ts'
import { createVision } from '../src/vision/index.ts'

const fake = new FakeAzure()
await fake.start()
t.teardown(() => fake.close())
fake.usageByDetail = true

const QUERY = `mutation Identify($image: Upload!, $detail: ImageDetail) {
  identifyVehicle(image: $image, detail: $detail) {
    id answer cached detailUsed looks
    vehicles { make model confidence }
    image { sentWidth sentHeight estimatedImageTokens }
    usage { promptTokens completionTokens totalTokens }
  }
}`
const BY_ID = 'query ($id: ID!) { identification(id: $id) { id answer detailUsed looks vehicles { model } usage { promptTokens } } }'

async function ask (
  app: FastifyInstance, file: Buffer, detail: string | null = 'ADAPTIVE', headers: Record<string, string> = {}
): Promise<Answer> {
  const parts: Part[] = [
    ['operations', JSON.stringify({ query: QUERY, variables: { image: null, detail } })],
    ['map', JSON.stringify({ 0: ['variables.image'] })],
    ['0', file, 'photo.jpg', 'image/jpeg']
  ]
  return await send(app, await encodeParts(parts), headers)
}

async function identified (app: FastifyInstance, file: Buffer, detail: string | null = 'ADAPTIVE', headers: Record<string, string> = {}): Promise<any> {
  const res = await ask(app, file, detail, headers)
  if (res.body.errors) throw new Error(JSON.stringify(res.body.errors))
  return res.body.data.identifyVehicle
}

const answer = (overrides: Partial<VisionAnswer> & { confidence?: 'HIGH' | 'MEDIUM' | 'LOW' }): VisionAnswer => {
  const { confidence, ...rest } = overrides
  const vehicle = { ...DEFAULT_ANSWER.vehicles[0]!, ...(confidence === undefined ? {} : { confidence }) }
  return { ...DEFAULT_ANSWER, vehicles: [vehicle], ...rest }
}
const LOW_UNSURE = answer({ answer: 'Maybe a tractor.', confidence: 'LOW' })
const HIGH_SURE = answer({ answer: 'A John Deere 6R 250.', vehicles: [{ ...DEFAULT_ANSWER.vehicles[0]!, model: '6R 250', confidence: 'HIGH' }] })

/** The fake answers by the detail each request was sent at; `high` may be any fault. */
function byDetail (low: VisionAnswer, high: ChatFault = { kind: 'ok', structured: HIGH_SURE }): (record: any) => ChatFault {
  return record => imageFromChat(record).detail === 'low' ? { kind: 'ok', structured: low } : high
}

/** Chat requests made while `run` ran. */
async function chatsDuring<T> (run: () => Promise<T>): Promise<{ value: T, chats: typeof fake.chatRequests }> {
  const before = fake.chatRequests.length
  const value = await run()
  return { value, chats: fake.chatRequests.slice(before) }
}

let photos = 0
/** A 1600×1200 photo no earlier test sent (the cache and the fake's records tell photos apart by their bytes). */
async function freshPhoto (width = 1600, height = 1200): Promise<Buffer> {
  photos++
  return await sharp({ create: { width, height, channels: 3, background: { r: (photos * 37) % 256, g: (photos * 91) % 256, b: 40 } } })
    .jpeg({ quality: 80 }).toBuffer()
}

t.test('needsCloserLook: no vehicle, the first vehicle below the minimum, an unclear photo; a cached answer is judged by its vehicles', async t => {
  const vehicle = DEFAULT_ANSWER.vehicles[0]!
  const judged = (confidence: 'HIGH' | 'MEDIUM' | 'LOW', imageQuality: 'CLEAR' | 'TOO_SMALL' | 'UNCLEAR' | null, min: 'HIGH' | 'MEDIUM' | 'LOW' = 'MEDIUM') =>
    needsCloserLook({ vehicles: [{ ...vehicle, confidence }], imageQuality }, min)
  t.equal(needsCloserLook({ vehicles: [], imageQuality: 'CLEAR' }, 'MEDIUM'), 'no_vehicle')
  t.equal(judged('LOW', 'CLEAR'), 'low_confidence')
  t.equal(judged('MEDIUM', 'CLEAR'), null, 'MEDIUM is kept by default')
  t.equal(judged('MEDIUM', 'CLEAR', 'HIGH'), 'low_confidence', 'and not with a minimum of HIGH')
  t.equal(judged('LOW', 'CLEAR', 'LOW'), null, 'a minimum of LOW keeps any vehicle')
  t.equal(judged('HIGH', 'TOO_SMALL'), 'image_unclear')
  t.equal(judged('HIGH', 'UNCLEAR'), 'image_unclear')
  t.equal(judged('HIGH', null), null, 'a cached answer does not say how clear the photo was')
  // Only the first vehicle counts: the one the answer is about.
  t.equal(needsCloserLook({ vehicles: [{ ...vehicle, confidence: 'HIGH' }, { ...vehicle, confidence: 'LOW' }], imageQuality: 'CLEAR' }, 'MEDIUM'), null)
})

t.test('a sure LOW look is the answer: one chat call at detail low with a ≤ 512×512 image, one look', async t => {
  const { app } = await buildAzureTestApp(t, fake)
  fake.chatFault = byDetail(answer({ confidence: 'HIGH' }))
  const photo = await freshPhoto()
  const { value: result, chats } = await chatsDuring(async () => await identified(app, photo))
  t.equal(chats.length, 1, 'one model call')
  const sent = imageFromChat(chats[0]!)
  t.equal(sent.detail, 'low')
  const { width, height } = await sharp(sent.bytes).metadata()
  t.ok(width <= 512 && height <= 512, `the LOW image: ${width}×${height}`)
  t.equal(result.detailUsed, 'LOW')
  t.equal(result.looks, 1)
  t.strictSame(result.usage, {
    promptTokens: USAGE_TEXT_TOKENS + 85,
    completionTokens: USAGE_COMPLETION_TOKENS,
    totalTokens: USAGE_TEXT_TOKENS + 85 + USAGE_COMPLETION_TOKENS
  })
  t.equal(result.image.estimatedImageTokens, 85)
  t.same([result.image.sentWidth, result.image.sentHeight], [512, 384])
})

t.test('every reason for a second look: the second request is detail high with the HIGH image; its answer is the answer', async t => {
  const { app } = await buildAzureTestApp(t, fake)
  const reasons: Array<[string, VisionAnswer, Record<string, string>?]> = [
    ['no vehicle', { ...DEFAULT_ANSWER, answer: 'I see a field.', vehicles: [] }],
    ['LOW confidence', LOW_UNSURE],
    ['imageQuality TOO_SMALL', { ...answer({ confidence: 'HIGH' }), imageQuality: 'TOO_SMALL' }],
    ['imageQuality UNCLEAR', { ...answer({ confidence: 'HIGH' }), imageQuality: 'UNCLEAR' }]
  ]
  for (const [reason, low] of reasons) {
    fake.chatFault = byDetail(low)
    const photo = await freshPhoto()
    const { value: result, chats } = await chatsDuring(async () => await identified(app, photo))
    t.equal(chats.length, 2, `${reason}: two model calls`)
    t.strictSame(chats.map(chat => imageFromChat(chat).detail), ['low', 'high'], `${reason}: low, then high`)
    // The second look's image is what a plain HIGH request sends.
    const plain = await chatsDuring(async () => await identified(app, photo, 'HIGH'))
    t.ok(imageFromChat(chats[1]!).bytes.equals(imageFromChat(plain.chats[0]!).bytes), `${reason}: the HIGH image, byte for byte`)
    t.equal(result.answer, HIGH_SURE.answer, `${reason}: the second look's answer`)
    t.equal(result.vehicles[0].model, '6R 250')
    t.equal(result.detailUsed, 'HIGH')
    t.equal(result.looks, 2)
    const high = imageTokensOf(chats[1]!)
    t.equal(high, estimateImageTokens(1600, 1200, 'high'))
    t.equal(result.usage.promptTokens, 2 * USAGE_TEXT_TOKENS + 85 + high, `${reason}: both calls' tokens`)
    t.equal(result.usage.completionTokens, 2 * USAGE_COMPLETION_TOKENS)
    t.equal(result.image.estimatedImageTokens, 85 + high, 'the image tokens of both looks')
    t.same([result.image.sentWidth, result.image.sentHeight], [1024, 768], 'the image the answer came from')
  }
})

t.test('VISION_ADAPTIVE_MIN_CONFIDENCE: a MEDIUM answer is kept by default, looked at again with HIGH', async t => {
  const medium = answer({ answer: 'Probably a John Deere.', confidence: 'MEDIUM' })
  fake.chatFault = byDetail(medium)
  const { app } = await buildAzureTestApp(t, fake)
  const kept = await chatsDuring(async () => await identified(app, await freshPhoto()))
  t.equal(kept.chats.length, 1)
  t.equal(kept.value.answer, medium.answer)
  t.equal(kept.value.looks, 1)

  const { app: strict } = await buildAzureTestApp(t, fake, { VISION_ADAPTIVE_MIN_CONFIDENCE: 'HIGH' })
  const again = await chatsDuring(async () => await identified(strict, await freshPhoto()))
  t.equal(again.chats.length, 2)
  t.equal(again.value.answer, HIGH_SURE.answer)
  t.equal(again.value.detailUsed, 'HIGH')
})

t.test('VISION_IMAGE_DETAIL=adaptive: the default when the caller names no detail; an explicit detail still wins', async t => {
  fake.chatFault = byDetail(answer({ confidence: 'HIGH' }))
  const { app } = await buildAzureTestApp(t, fake, { VISION_IMAGE_DETAIL: 'adaptive' })
  const implicit = await chatsDuring(async () => await identified(app, await freshPhoto(), null))
  t.strictSame(implicit.chats.map(chat => imageFromChat(chat).detail), ['low'])
  t.equal(implicit.value.detailUsed, 'LOW')
  const explicit = await chatsDuring(async () => await identified(app, await freshPhoto(), 'HIGH'))
  t.strictSame(explicit.chats.map(chat => imageFromChat(chat).detail), ['high'])
  t.equal(explicit.value.detailUsed, 'HIGH')
  t.equal(explicit.value.looks, 1)
})

t.test('plain details: detailUsed is the detail sent, one look', async t => {
  fake.chatFault = () => ({ kind: 'ok' })
  const { app } = await buildAzureTestApp(t, fake)
  for (const detail of ['AUTO', 'HIGH', 'LOW']) {
    const result = await identified(app, await freshPhoto(), detail)
    t.equal(result.detailUsed, detail)
    t.equal(result.looks, 1)
  }
})

t.test('a failed second look answers with the first look (looks 2, detailUsed LOW), warned once and counted', async t => {
  const lines: any[] = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  const { app } = await buildAzureTestApp(t, fake, { VISION_TIMEOUT_MS: '1500' }, logger)
  const cases: Array<[string, ChatFault, string]> = [
    ['a 500', { kind: 'status', status: 500 }, 'UPSTREAM_UNAVAILABLE'],
    ['a hang past the budget', { kind: 'hang' }, 'UPSTREAM_TIMEOUT']
  ]
  for (const [name, fault, code] of cases) {
    fake.chatFault = byDetail(LOW_UNSURE, fault)
    lines.length = 0
    const started = Date.now()
    const res = await ask(app, await freshPhoto())
    t.notOk(res.body.errors, `${name}: no error`)
    const result = res.body.data.identifyVehicle
    t.equal(result.answer, LOW_UNSURE.answer, `${name}: the first look's answer`)
    t.equal(result.detailUsed, 'LOW')
    t.equal(result.looks, 2)
    t.ok(Date.now() - started < 1500 * 1.5 + 1000, `${name}: within the adaptive budget (${Date.now() - started} ms)`)
    const warnings = lines.filter(line => line.msg === 'the second look failed; answered with the first look')
    t.equal(warnings.length, 1, `${name}: one warning`)
    t.equal(warnings[0]?.code, code, `${name}: its code`)
  }
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).payload
  t.match(metrics, /agrivision_second_look_failures_total\{code="UPSTREAM_TIMEOUT"\} 1/)
  t.match(metrics, /agrivision_second_look_failures_total\{code="UPSTREAM_\w+"\} 1/)
  t.match(metrics, /agrivision_identification_looks_total\{looks="2"\} 2/)
  t.match(metrics, /agrivision_second_look_reasons_total\{reason="low_confidence"\} 2/)
})

t.test('metrics: identifications by looks, second-look reasons, the image tokens sent and HIGH-only', async t => {
  const { app } = await buildAzureTestApp(t, fake)
  fake.chatFault = byDetail(answer({ confidence: 'HIGH' }))
  await identified(app, await freshPhoto())
  fake.chatFault = byDetail({ ...DEFAULT_ANSWER, vehicles: [] })
  await identified(app, await freshPhoto())
  await identified(app, await freshPhoto(), 'HIGH')
  const high = estimateImageTokens(1600, 1200, 'high')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).payload
  t.match(metrics, /agrivision_identification_looks_total\{looks="1"\} 2/, 'the plain HIGH one looked once too')
  t.match(metrics, /agrivision_identification_looks_total\{looks="2"\} 1/)
  t.match(metrics, /agrivision_second_look_reasons_total\{reason="no_vehicle"\} 1/)
  t.match(metrics, new RegExp(`agrivision_adaptive_image_tokens_total\\{kind="sent"\\} ${85 + 85 + high}\\n`))
  t.match(metrics, new RegExp(`agrivision_adaptive_image_tokens_total\\{kind="high_only"\\} ${2 * high}\\n`))
})

t.test('the result cache: a later HIGH request reuses a two-look answer, a later LOW one a one-look answer; an unsure LOW entry is not kept', async t => {
  const { app } = await buildAzureTestApp(t, fake, { RESULT_CACHE_TTL_S: '3600' })
  fake.chatFault = byDetail(LOW_UNSURE)
  const unsure = await freshPhoto()
  const twoLooks = await identified(app, unsure)
  t.equal(twoLooks.looks, 2)
  await app.history!.flushed()
  const high = await chatsDuring(async () => await identified(app, unsure, 'HIGH'))
  t.equal(high.chats.length, 0, 'HIGH for the same photo: no model call')
  t.equal(high.value.cached, true)
  t.equal(high.value.answer, HIGH_SURE.answer)

  // A plain LOW answer that is unsure, cached: ADAPTIVE does not keep it, and looks at HIGH (cached too) at once.
  await identified(app, unsure, 'LOW')
  await app.history!.flushed()
  const adaptiveAgain = await chatsDuring(async () => await identified(app, unsure))
  t.equal(adaptiveAgain.chats.length, 0, 'both looks from the cache')
  t.equal(adaptiveAgain.value.answer, HIGH_SURE.answer)
  t.equal(adaptiveAgain.value.looks, 2)
  t.equal(adaptiveAgain.value.cached, true)

  fake.chatFault = byDetail(answer({ answer: 'Surely a John Deere.', confidence: 'HIGH' }))
  const sure = await freshPhoto()
  const oneLook = await identified(app, sure)
  t.equal(oneLook.looks, 1)
  await app.history!.flushed()
  // These photos are flat colour: a plain LOW image (decoded with the JPEG shrink) and ADAPTIVE's (made from the
  // HIGH decode) are the same bytes, so the same key. For a photo with detail they differ by a few bytes: each its own entry.
  const low = await chatsDuring(async () => await identified(app, sure, 'LOW'))
  t.equal(low.chats.length, 0, 'LOW for the same photo: no model call')
  t.equal(low.value.answer, 'Surely a John Deere.')
  const adaptive = await chatsDuring(async () => await identified(app, sure))
  t.equal(adaptive.chats.length, 0, 'ADAPTIVE again: the sure LOW entry is kept')
  t.equal(adaptive.value.detailUsed, 'LOW')
  t.equal(adaptive.value.looks, 1)
})

/** One identification of two looks is one record, one event, both usages; a retry with its Idempotency-Key replays it. */
function recordCases (t: Test, databaseEnv: () => Promise<Record<string, string>>): void {
  t.test('two looks: one record, one completed event, both usages; an Idempotency-Key retry replays with no model call', async t => {
    const { app } = await buildAzureTestApp(t, fake, await databaseEnv())
    const completed: IdentificationCompleted[] = []
    app.identificationEvents.on('completed', event => { completed.push(event) })
    fake.chatFault = byDetail(LOW_UNSURE)
    const photo = await freshPhoto()
    const first = await chatsDuring(async () => await ask(app, photo, 'ADAPTIVE', { 'idempotency-key': 'adaptive-1' }))
    t.notOk(first.value.body.errors)
    const result = first.value.body.data.identifyVehicle
    t.equal(first.chats.length, 2)
    t.equal(completed.length, 1, 'one completed event')
    t.equal(completed[0]?.detail, 'adaptive')
    t.equal(completed[0]?.identification.looks, 2)
    await app.history!.flushed()

    const list = await sendJson(app, { query: '{ identifications(first: 10) { edges { node { id looks detailUsed } } } }' })
    t.strictSame(list.body.data.identifications.edges.map((edge: any) => edge.node), [{ id: result.id, looks: 2, detailUsed: 'HIGH' }], 'one record')
    const stored = await sendJson(app, { query: BY_ID, variables: { id: result.id } })
    t.strictSame(stored.body.data.identification, {
      id: result.id, answer: HIGH_SURE.answer, detailUsed: 'HIGH', looks: 2, vehicles: [{ model: '6R 250' }], usage: { promptTokens: result.usage.promptTokens }
    }, 'the record keeps the looks, the detail used and both calls\' tokens')
    t.equal(result.usage.promptTokens, 2 * USAGE_TEXT_TOKENS + 85 + estimateImageTokens(1600, 1200, 'high'))

    const retry = await chatsDuring(async () => await ask(app, photo, 'ADAPTIVE', { 'idempotency-key': 'adaptive-1' }))
    t.equal(retry.chats.length, 0, 'no model call')
    t.equal(retry.value.headers['idempotency-replayed'], 'true')
    const replayed = retry.value.body.data.identifyVehicle
    t.equal(replayed.id, result.id)
    t.equal(replayed.looks, 2)
    t.equal(replayed.detailUsed, 'HIGH')
    t.equal(replayed.answer, HIGH_SURE.answer)
    t.equal(completed.length, 1, 'no second event')

    // The same key with another detail is another request.
    const other = await ask(app, photo, 'HIGH', { 'idempotency-key': 'adaptive-1' })
    t.equal(other.body.errors?.[0]?.extensions.code, 'IDEMPOTENCY_KEY_REUSED')
  })
}

t.test('SQLite', async t => { recordCases(t, async () => ({})) })
t.test('PostgreSQL', async t => {
  const server = await startPostgres(t)
  let databases = 0
  recordCases(t, async () => ({ DATABASE_URL: await createDatabase(server.url, `adaptive_${++databases}`) }))
})

t.test('the flow called directly: a client gone between the looks ends it (CLIENT_CLOSED_REQUEST), no second call', async t => {
  const config = testConfig({ AZURE_OPENAI_ENDPOINT: fake.origin, AZURE_OPENAI_DEPLOYMENT: 'gpt-4o-vision' })
  fake.applyIdentityEnv()
  const real = createVision(config, pino({ level: 'silent' }))
  t.teardown(async () => { await real.close?.() })
  const client = new AbortController()
  // The client leaves as the first answer arrives.
  const vision = {
    ...real,
    identify: async (request: Parameters<typeof real.identify>[0]) => {
      const result = await real.identify(request)
      client.abort()
      return result
    }
  }
  const events = new IdentificationEvents(pino({ level: 'silent' }))
  const failed: string[] = []
  events.on('failed', event => { failed.push(event.code) })
  fake.chatFault = byDetail(LOW_UNSURE)
  const deps = {
    vision,
    images: createImagePipeline(config.images),
    events,
    admission: new AdmissionGate({ maxConcurrency: 1, maxConcurrencyPerCaller: 1, queueSize: 0, queueTimeoutMs: 1000 }),
    adaptive: { minConfidence: 'MEDIUM' as const, budgetMs: 10_000 }
  }
  const caller = { kind: 'apikey' as const, id: 'field', roles: new Set(['Identify' as const]) }
  const input = { image: await freshPhoto(), instructions: 'what is it', language: 'en', detail: 'adaptive' as const, signal: client.signal }
  const { chats } = await chatsDuring(async () => {
    await t.rejects(identifyVehicle(deps, { caller, requestId: 'r1' }, input), { code: 'CLIENT_CLOSED_REQUEST' })
  })
  t.equal(chats.length, 1, 'the second look was not asked')
  t.strictSame(failed, ['CLIENT_CLOSED_REQUEST'], 'one failed event')
})

t.test('prepareLowAndHigh: the LOW image first, from the decode that makes the HIGH one; HIGH byte for byte the plain HIGH image', async t => {
  const images = createImagePipeline(testConfig({ IMAGE_CONCURRENCY: '1' }).images)
  const photo = await freshPhoto()
  const inspected = await inspectImage(photo)
  const order: string[] = []
  const both = images.prepareLowAndHigh(photo, inspected)
  const [low, high] = await Promise.all([both.low.then(p => { order.push('low'); return p }), both.high.then(p => { order.push('high'); return p })])
  t.strictSame(order, ['low', 'high'], 'the LOW image is handed over first')
  t.same([low.detail, low.width, low.height, low.mimeType, low.estimatedImageTokens], ['low', 512, 384, 'image/jpeg', 85])
  t.same(await sharp(low.bytes).metadata().then(m => [m.width, m.height, m.format]), [512, 384, 'jpeg'])
  const plain = await images.prepare(photo, inspected, 'high')
  t.ok(high.bytes.equals(plain.bytes), 'the HIGH image is the plain HIGH one, byte for byte')
  t.same([high.detail, high.width, high.height, high.estimatedImageTokens], ['high', 1024, 768, plain.estimatedImageTokens])

  // Abandoned once the LOW image is out: the HIGH one is not encoded.
  const controller = new AbortController()
  const abandoned = images.prepareLowAndHigh(photo, inspected, { signal: controller.signal })
  await abandoned.low
  controller.abort()
  await t.rejects(abandoned.high, { name: 'AbortError' })

  // A photo that fits at HIGH is sent as it is there; at LOW too when it is at most IMAGE_LOW_ORIGINAL_MAX_BYTES
  // (the model shrinks it and charges 85 tokens either way); a byte more, and the LOW image is made.
  const fits = await jpeg(800, 600)
  const fitsInspected = await inspectImage(fits)
  const fitting = images.prepareLowAndHigh(fits, fitsInspected)
  t.equal((await fitting.high).original, true)
  const asItIs = await fitting.low
  t.same([asItIs.original, asItIs.detail, asItIs.width, asItIs.height, asItIs.estimatedImageTokens], [true, 'low', 800, 600, 85])
  t.ok(asItIs.bytes.equals(fits), 'the upload itself at LOW')
  const atLimit = createImagePipeline(testConfig({ IMAGE_LOW_ORIGINAL_MAX_BYTES: String(fits.length) }).images)
  t.equal((await atLimit.prepare(fits, fitsInspected, 'low')).original, true, 'exactly at the limit: as it is')
  const overLimit = createImagePipeline(testConfig({ IMAGE_LOW_ORIGINAL_MAX_BYTES: String(fits.length - 1) }).images)
  const made = overLimit.prepareLowAndHigh(fits, fitsInspected)
  t.equal((await made.high).original, true)
  t.same([(await made.low).original, (await made.low).width, (await made.low).height], [false, 512, 384], 'a byte over: the LOW image is made')
  const never = createImagePipeline(testConfig({ IMAGE_LOW_ORIGINAL_MAX_BYTES: '0' }).images)
  t.equal((await never.prepare(fits, fitsInspected, 'low')).original, false, '0: always made')
})

// A caller cannot double its share of the model by asking ADAPTIVE: the slot is held through both looks, so while
// its second look runs, another identification of the same caller is refused by the per-caller cap, and the slot is
// free again once the answer is in.
t.test('both looks hold one slot: the caller\'s cap counts an ADAPTIVE identification once, for its whole length', async t => {
  const admission = new AdmissionGate({ maxConcurrency: 4, maxConcurrencyPerCaller: 1, queueSize: 0, queueTimeoutMs: 1000 })
  const caller = { kind: 'apikey' as const, id: 'field', roles: new Set(['Identify' as const]) }
  const input = { image: await freshPhoto(), instructions: 'what is it', language: 'en', detail: 'adaptive' as const, signal: new AbortController().signal }
  const seen: string[] = []
  const during: Array<Promise<string>> = []
  const outcomeOf = async (attempt: Promise<unknown>): Promise<string> =>
    await attempt.then(() => 'answered', (err: { code?: string }) => err.code ?? 'error')
  const vision = {
    backend: 'SIMULATED' as const,
    identify: async (request: { detail: string }) => {
      seen.push(request.detail)
      if (request.detail === 'low') {
        during.push(outcomeOf(identifyVehicle(deps, { caller, requestId: 'r2' }, { ...input, detail: 'low' })))
        return { answer: 'Nothing clear.', vehicles: [], imageQuality: 'CLEAR' as const, model: 'm', usage: null, upstreamStatus: null, backendName: null }
      }
      during.push(outcomeOf(identifyVehicle(deps, { caller, requestId: 'r3' }, { ...input, detail: 'low' })))
      return { answer: 'A tractor.', vehicles: [{ ...DEFAULT_ANSWER.vehicles[0]! }], imageQuality: 'CLEAR' as const, model: 'm', usage: null, upstreamStatus: null, backendName: null }
    },
    status: () => ({ backend: 'SIMULATED' as const, deployment: null, ready: true })
  }
  const deps = {
    vision,
    images: createImagePipeline(testConfig().images),
    events: new IdentificationEvents(pino({ level: 'silent' })),
    admission,
    adaptive: { minConfidence: 'MEDIUM' as const, budgetMs: 10_000 }
  }
  const result = await identifyVehicle(deps, { caller, requestId: 'r1' }, input)
  t.equal(result.looks, 2)
  t.strictSame(seen.slice(0, 2), ['low', 'high'], 'two looks')
  t.strictSame(await Promise.all(during), ['RATE_LIMITED', 'RATE_LIMITED'], 'refused during either look: the caller\'s one slot is held')
  t.equal(admission.active, 0, 'the slot is given back once answered')
  const after = await identifyVehicle(deps, { caller, requestId: 'r4' }, { ...input, detail: 'high' })
  t.equal(after.looks, 1, 'and the caller identifies again')
})

t.test('prepare with an aborted signal: no job for an image that needs one; one that fits is still sent as is', async t => {
  const images = createImagePipeline(testConfig().images)
  const big = await freshPhoto()
  await t.rejects(images.prepare(big, await inspectImage(big), 'high', { signal: AbortSignal.abort() }), { name: 'AbortError' })
  const small = await jpeg(64, 48)
  const prepared = await images.prepare(small, await inspectImage(small), 'high', { signal: AbortSignal.abort() })
  t.equal(prepared.original, true)
})

t.test('the simulated backend: a large photo is seen at LOW (one look), a small one is not (two looks)', async t => {
  const app = await buildTestApp(t)
  const large = await identified(app, await jpeg(4032, 3024))
  t.equal(large.looks, 1)
  t.equal(large.detailUsed, 'LOW')
  t.equal(large.vehicles[0].confidence, 'MEDIUM')
  const small = await identified(app, await jpeg(400, 250))
  t.equal(small.looks, 2)
  t.equal(small.detailUsed, 'HIGH')
  t.equal(small.usage, null)
})

t.test('the simulated backend reads no pixels: its LOW look is described, not encoded (no sharp job), and says so', async t => {
  const real = createImagePipeline(testConfig().images)
  const calls: string[] = []
  const images: ImagePipeline = {
    async prepare (image, inspected, detail, options) { calls.push(`prepare ${detail}`); return await real.prepare(image, inspected, detail, options) },
    prepareLowAndHigh (image, inspected, options) { calls.push('prepareLowAndHigh'); return real.prepareLowAndHigh(image, inspected, options) },
    describe (image, inspected, detail) { calls.push(`describe ${detail}`); return real.describe(image, inspected, detail) }
  }
  const app = await buildTestApp(t, { images, env: { VISION_IMAGE_DETAIL: 'adaptive' } })
  const photo = await jpeg(1600, 1200) // re-encoded at both details: the LOW image would be made
  const query = `mutation ($image: Upload!) { identifyVehicle(image: $image) {
    id answer looks detailUsed vehicles { model confidence evidence } image { sha256 sentMimeType sentBytes sentWidth sentHeight estimatedImageTokens } } }`
  const identifyPhoto = async (image: Buffer) => await send(app, await encodeParts([
    ['operations', JSON.stringify({ query, variables: { image: null } })],
    ['map', JSON.stringify({ 0: ['variables.image'] })],
    ['0', image, 'photo.jpg', 'image/jpeg']
  ]))
  const res = await identifyPhoto(photo)
  t.equal(res.body.errors, undefined)
  const it = res.body.data.identifyVehicle
  t.strictSame(calls, ['describe low'], 'described at LOW, nothing encoded')
  t.equal(it.looks, 1)
  t.equal(it.detailUsed, 'LOW')
  t.strictSame(it.image, { sha256: it.image.sha256, sentMimeType: 'image/jpeg', sentBytes: null, sentWidth: 512, sentHeight: 384, estimatedImageTokens: 85 },
    'what would be sent: its size, type and tokens; no byte count, since nothing was encoded')
  t.match(it.answer, new RegExp(`Would have been sent a 512×384 JPEG image made from the ${photo.length}-byte upload \\(not encoded: no model reads it\\)`))
  t.notMatch(it.answer, /Received/)
  t.equal(it.vehicles[0].model, `SIM-${it.image.sha256.slice(0, 8)}`, 'the category and model from the upload\'s hash')
  t.match(it.vehicles[0].evidence.join(' '), /SHA-256 of the upload/)
  t.equal(it.vehicles[0].confidence, 'MEDIUM')
  await app.history!.flushed()
  const stored = await sendJson(app, { query: 'query ($id: ID!) { identification(id: $id) { looks detailUsed image { sentBytes sentWidth } } }', variables: { id: it.id } })
  t.strictSame(stored.body.data.identification, { looks: 1, detailUsed: 'LOW', image: { sentBytes: null, sentWidth: 512 } }, 'history keeps it as answered')

  // Issue 19's headline upload (800×600, ~100 KB) is sent as it is at LOW: its bytes are known, the model's view is 512×384.
  calls.length = 0
  const small = await jpeg(800, 600)
  const again = await identifyPhoto(small)
  t.equal(again.body.errors, undefined)
  const sent = again.body.data.identifyVehicle
  t.strictSame(calls, ['describe low'])
  t.strictSame([sent.looks, sent.detailUsed, sent.vehicles[0].confidence], [1, 'LOW', 'MEDIUM'], 'seen at 512×384 by the model: one look')
  t.strictSame(sent.image, { sha256: sent.image.sha256, sentMimeType: 'image/jpeg', sentBytes: small.length, sentWidth: 800, sentHeight: 600, estimatedImageTokens: 85 })
})
