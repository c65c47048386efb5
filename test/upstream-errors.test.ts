// Each upstream failure, after the SDK's own retries, becomes a stable extensions.code.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { FakeAzure, type ChatFault } from './support/fake-azure.ts'
import { buildAzureTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
const photo = await images.jpeg(40, 30)

async function identifyWith (app: FastifyInstance, fault: ChatFault) {
  fake.chatFault = () => fault
  const before = fake.chatRequests.length
  const res = await app.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(photo)) })
  return { status: res.statusCode, body: res.json(), attempts: fake.chatRequests.length - before }
}

const { app } = await buildAzureTestApp(t, fake, { VISION_TIMEOUT_MS: '15000' })

t.test('429 with retry-after → UPSTREAM_RATE_LIMITED with retryAfter, after the SDK retries', async t => {
  const { body, attempts } = await identifyWith(app, { kind: 'status', status: 429, retryAfter: '0' })
  t.equal(body.data, null)
  t.equal(body.errors[0].extensions.code, 'UPSTREAM_RATE_LIMITED')
  t.equal(body.errors[0].extensions.retryAfter, 0)
  t.equal(attempts, 3, 'the SDK tried 3 times')
})

t.test('429 with a retry-after in seconds reports it, and holds back new calls until then', async t => {
  const { app: own } = await buildAzureTestApp(t, fake)
  // retry-after over 60 s is ignored by the SDK's backoff, so this stays quick enough
  const { body, attempts } = await identifyWith(own, { kind: 'status', status: 429, retryAfter: '120' })
  t.equal(body.errors[0].extensions.code, 'UPSTREAM_RATE_LIMITED')
  t.equal(body.errors[0].extensions.retryAfter, 120)
  t.equal(attempts, 3)

  const held = await identifyWith(own, { kind: 'ok' })
  t.equal(held.body.errors[0].extensions.code, 'UPSTREAM_RATE_LIMITED', 'the next call is held back')
  t.ok(held.body.errors[0].extensions.retryAfter > 110 && held.body.errors[0].extensions.retryAfter <= 120, 'for as long as Azure said (held up to 10 minutes)')
  t.equal(held.attempts, 0, 'without reaching Azure')
})

t.test('the cool-down ends when Azure said it would', async t => {
  const { app: own } = await buildAzureTestApp(t, fake)
  let first = true
  fake.chatFault = () => {
    if (first) { first = false; return { kind: 'status', status: 429, retryAfter: '1' } }
    return { kind: 'ok' }
  }
  const res = await own.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(photo)) })
  t.equal(res.json().data.identifyVehicle.backend, 'AZURE_OPENAI', 'the SDK retried after 1 s')
  await new Promise(resolve => setTimeout(resolve, 1100))
  const after = await identifyWith(own, { kind: 'ok' })
  t.notOk(after.body.errors, 'calls flow again')
})

t.test('500 → UPSTREAM_UNAVAILABLE', async t => {
  const { body } = await identifyWith(app, { kind: 'status', status: 503 })
  t.equal(body.errors[0].extensions.code, 'UPSTREAM_UNAVAILABLE')
  t.match(body.errors[0].message, /HTTP 503/)
})

t.test('400 (an image Azure cannot read) → BAD_USER_INPUT with Azure\'s reason, not retried', async t => {
  const { body, attempts } = await identifyWith(app, { kind: 'status', status: 400 })
  t.equal(body.errors[0].extensions.code, 'BAD_USER_INPUT')
  t.match(body.errors[0].message, /HTTP 400\): fake status 400/)
  t.equal(attempts, 1)
})

t.test('401 PermissionDenied → UPSTREAM_AUTH naming the role to grant', async t => {
  const { body, attempts } = await identifyWith(app, { kind: 'permission-denied' })
  t.equal(body.errors[0].extensions.code, 'UPSTREAM_AUTH')
  t.match(body.errors[0].message, /Cognitive Services OpenAI User/)
  t.equal(attempts, 1, 'not retried')
})

t.test('content filter on the prompt (HTTP 400) and on the completion (finish_reason) → CONTENT_FILTERED', async t => {
  const prompt = await identifyWith(app, { kind: 'content-filter-prompt' })
  t.equal(prompt.body.errors[0].extensions.code, 'CONTENT_FILTERED')
  const completion = await identifyWith(app, { kind: 'content-filter-completion' })
  t.equal(completion.body.errors[0].extensions.code, 'CONTENT_FILTERED')
})

t.test('a refusal (message.refusal) → MODEL_REFUSED with the model\'s words, not asked again', async t => {
  const { body, attempts } = await identifyWith(app, { kind: 'refusal', refusal: 'I can\'t help with identifying this image.' })
  t.equal(body.data, null)
  t.equal(body.errors[0].extensions.code, 'MODEL_REFUSED')
  t.equal(body.errors[0].extensions.refusal, 'I can\'t help with identifying this image.')
  t.match(body.errors[0].message, /declined/)
  t.equal(attempts, 1)
})

// The first answer is bad, the second good: success after exactly one more call, usage of both.
for (const bad of [{ kind: 'invalid-json' }, { kind: 'schema-violation' }] as const) {
  t.test(`${bad.kind} once → asked again, then the good answer`, async t => {
    let calls = 0
    fake.chatFault = () => (calls++ === 0 ? bad : { kind: 'ok' })
    const before = fake.chatRequests.length
    const res = await app.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(photo)) })
    const body = res.json()
    t.notOk(body.errors, JSON.stringify(body.errors))
    t.equal(body.data.identifyVehicle.vehicles[0].category, 'TRACTOR')
    t.equal(fake.chatRequests.length - before, 2, 'two upstream calls')
    t.same(fake.chatRequests.at(-1)?.body, fake.chatRequests.at(-2)?.body, 'the same request again')
    t.equal(body.data.identifyVehicle.usage.completionTokens, 84, 'the tokens of both calls')
  })

  t.test(`${bad.kind} twice → UPSTREAM_INVALID_RESPONSE after exactly 2 upstream calls`, async t => {
    const { status, body, attempts } = await identifyWith(app, bad)
    t.equal(status, 200)
    t.equal(body.data, null)
    t.equal(body.errors[0].extensions.code, 'UPSTREAM_INVALID_RESPONSE')
    t.match(body.errors[0].message, bad.kind === 'invalid-json' ? /is not JSON/ : /category is not one of/)
    t.notMatch(body.errors[0].message, /SPACESHIP|TRAC"/, 'no model content in the message')
    t.equal(attempts, 2)
  })
}

t.test('an answer cut off at VISION_MAX_TOKENS says so', async t => {
  const { body, attempts } = await identifyWith(app, { kind: 'invalid-json', finishReason: 'length' })
  t.equal(body.errors[0].extensions.code, 'UPSTREAM_INVALID_RESPONSE')
  t.match(body.errors[0].message, /cut off at VISION_MAX_TOKENS/)
  t.equal(attempts, 2)
})

t.test('a hung deployment → UPSTREAM_TIMEOUT within VISION_TIMEOUT_MS, retries included', async t => {
  const { app: impatient } = await buildAzureTestApp(t, fake, { VISION_TIMEOUT_MS: '700' })
  const started = performance.now()
  const { body } = await identifyWith(impatient, { kind: 'hang' })
  const elapsed = performance.now() - started
  t.equal(body.errors[0].extensions.code, 'UPSTREAM_TIMEOUT')
  t.ok(elapsed < 3000, `gave up after ${Math.round(elapsed)} ms`)
  fake.releaseHung()
})

t.test('an unreachable endpoint → UPSTREAM_UNAVAILABLE', async t => {
  const { app: offline } = await buildAzureTestApp(t, fake, { AZURE_OPENAI_ENDPOINT: 'http://127.0.0.1:9', VISION_TIMEOUT_MS: '10000' })
  const res = await offline.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(photo)) })
  t.equal(res.json().errors[0].extensions.code, 'UPSTREAM_UNAVAILABLE')
})

t.test('a client that disconnects aborts its upstream call', async t => {
  fake.chatFault = () => ({ kind: 'hang' })
  const { app: live } = await buildAzureTestApp(t, fake, { VISION_TIMEOUT_MS: '30000' })
  const address = await live.listen({ host: '127.0.0.1', port: 0 })
  const controller = new AbortController()
  const before = fake.chatRequests.length
  const { headers, payload } = await identifyBody(photo)
  const request = fetch(`${address}/graphql`, { method: 'POST', headers, body: new Uint8Array(payload), signal: controller.signal })
    .catch((err: Error) => err)
  await until(() => fake.chatRequests.length > before)
  t.equal(fake.inFlightChats, 1, 'the upstream call is in flight')
  controller.abort()
  t.ok(await request instanceof Error)
  await until(() => fake.inFlightChats === 0)
  t.equal(fake.inFlightChats, 0, 'the upstream connection was closed')
  t.equal(fake.chatRequests.length, before + 1, 'and not retried')
})

async function until (condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}
