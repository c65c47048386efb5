// Several Azure OpenAI deployments (AZURE_OPENAI_BACKENDS): each routing rule, with the real openai client
// against loopback fakes standing for regions, each with its own faults.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { RetryableError, type AppError } from '../src/errors.ts'
import type { VisionService } from '../src/vision/types.ts'
import { regionsVision, startRegions, visionRequest } from './support/regions.ts'

const regions = await startRegions(t, [
  { name: 'ptu', priority: 0 },
  { name: 'west', priority: 1, weight: 3 },
  { name: 'north', priority: 1, weight: 1 }
])
const { ptu, west, north } = regions.fakes as Record<'ptu' | 'west' | 'north', NonNullable<typeof regions.fakes[string]>>

function healthy (): void {
  for (const fake of [ptu, west, north]) fake.chatFault = () => ({ kind: 'ok' })
}

async function failure (vision: VisionService): Promise<AppError & { retryAfterSeconds?: number }> {
  try {
    await vision.identify(visionRequest())
  } catch (err) {
    if (err instanceof RetryableError) return err
    if (err instanceof Error && 'code' in err) return err as AppError
    throw err
  }
  throw new Error('the identification succeeded')
}

t.beforeEach(() => { healthy(); regions.reset() })

t.test('the lowest priority number takes every request while it is healthy', async t => {
  const vision = regionsVision(regions)
  for (let i = 0; i < 20; i++) t.equal((await vision.identify(visionRequest())).backendName, 'ptu')
  t.strictSame(regions.calls(), { ptu: 20, west: 0, north: 0 })
})

t.test('within a priority, requests are shared by weight', async t => {
  ptu.chatFault = () => ({ kind: 'status', status: 429, retryAfterMs: '60000' })
  const vision = regionsVision(regions)
  for (let i = 0; i < 200; i++) await vision.identify(visionRequest())
  const calls = regions.calls()
  t.equal(calls.ptu, 1, 'the held backend was asked once, then held for its retry-after')
  t.equal((calls.west ?? 0) + (calls.north ?? 0), 200)
  t.ok((calls.west ?? 0) > 120 && (calls.west ?? 0) < 180, `weight 3 : 1 → west took ${calls.west} of 200`)
})

t.test('a 429 holds that backend for its retry-after-ms, and the same request goes to the next at once', async t => {
  let answered429At = 0
  ptu.chatFault = (_request, index) => {
    if (index === ptu.chatRequests.length - 1 && answered429At === 0) {
      answered429At = Date.now()
      return { kind: 'status', status: 429, retryAfterMs: '700' }
    }
    return { kind: 'ok' }
  }
  const vision = regionsVision(regions)
  const started = Date.now()
  const result = await vision.identify(visionRequest())
  t.not(result.backendName, 'ptu', 'answered by another region')
  t.ok(Date.now() - started < 500, 'without waiting out the retry-after')
  t.equal(vision.backends?.().find(b => b.name === 'ptu')?.state, 'HELD')
  for (let i = 0; i < 5; i++) t.not((await vision.identify(visionRequest())).backendName, 'ptu')
  t.equal(regions.calls().ptu, 1, 'no request reaches a held backend')
  await sleep(800)
  t.equal((await vision.identify(visionRequest())).backendName, 'ptu', 'back once the hold ends')
  t.ok(ptu.chatRequests.at(-1)!.at - answered429At >= 700, 'not before')
})

t.test('every backend held: UPSTREAM_RATE_LIMITED with the soonest retryAfter, and no call before a hold ends', async t => {
  ptu.chatFault = () => ({ kind: 'status', status: 429, retryAfterMs: '9000' })
  west.chatFault = () => ({ kind: 'status', status: 429, retryAfter: '3' })
  north.chatFault = () => ({ kind: 'status', status: 429, retryAfter: '5' })
  const vision = regionsVision(regions)
  const err = await failure(vision)
  t.equal(err.code, 'UPSTREAM_RATE_LIMITED')
  t.equal(err.retryAfterSeconds, 3, 'the soonest of 9 s, 3 s and 5 s')
  t.strictSame(regions.calls(), { ptu: 1, west: 1, north: 1 }, 'each asked once')
  for (let i = 0; i < 5; i++) {
    const again = await failure(vision)
    t.equal(again.code, 'UPSTREAM_RATE_LIMITED')
    t.ok(again.retryAfterSeconds !== undefined && again.retryAfterSeconds <= 3)
  }
  t.strictSame(regions.calls(), { ptu: 1, west: 1, north: 1 }, 'while all are held, no backend is called')
  t.equal((await vision.status()).ready, false, 'not ready while every backend is held')
})

t.test('5xx: the breaker opens after 3 failures in a row, then no request waits on it; one probe after the cool-down', async t => {
  ptu.chatFault = () => ({ kind: 'status', status: 500 })
  const vision = regionsVision(regions, { VISION_BREAKER_COOLDOWN_MS: '600' })
  for (let i = 0; i < 10; i++) t.not((await vision.identify(visionRequest())).backendName, 'ptu', 'answered elsewhere')
  t.equal(regions.calls().ptu, 3, 'the failing backend was tried 3 times, then its breaker opened')
  t.match(vision.backends?.().find(b => b.name === 'ptu'), { state: 'OPEN', consecutiveFailures: 3 })
  await sleep(700)
  t.equal(vision.backends?.().find(b => b.name === 'ptu')?.state, 'HALF_OPEN')
  regions.reset()
  await Promise.all(Array.from({ length: 5 }, async () => await vision.identify(visionRequest())))
  t.equal(regions.calls().ptu, 1, 'half-open: one probe among 5 concurrent requests')
  t.equal(vision.backends?.().find(b => b.name === 'ptu')?.state, 'OPEN', 'the probe failed: open again')
  healthy()
  await sleep(700)
  t.equal((await vision.identify(visionRequest())).backendName, 'ptu', 'the probe succeeds')
  t.match(vision.backends?.().find(b => b.name === 'ptu'), { state: 'CLOSED', consecutiveFailures: 0 })
})

t.test('connection refused, then back: breaker opens within 3 attempts; traffic returns after the cool-down', async t => {
  await ptu.stopListening()
  t.teardown(async () => { if (!ptu.listening) await ptu.start() })
  const vision = regionsVision(regions, { VISION_BREAKER_COOLDOWN_MS: '500' })
  const attempts: string[] = []
  vision.onAttempt?.(a => { if (a.backend === 'ptu') attempts.push(a.outcome) })
  for (let i = 0; i < 10; i++) t.not((await vision.identify(visionRequest())).backendName, 'ptu')
  t.strictSame(attempts, ['error', 'error', 'error'], 'three failed connections, then none')
  await ptu.start()
  await sleep(600)
  t.equal((await vision.identify(visionRequest())).backendName, 'ptu', 'takes traffic again')
})

t.test('a reset connection fails over to the next backend', async t => {
  ptu.chatFault = () => ({ kind: 'reset' })
  const vision = regionsVision(regions)
  const result = await vision.identify(visionRequest())
  t.not(result.backendName, 'ptu')
  t.equal(regions.calls().ptu, 1)
})

t.test('a timed-out attempt is retried elsewhere within VISION_TIMEOUT_MS, at most once per backend', async t => {
  ptu.chatFault = () => ({ kind: 'hang' })
  const vision = regionsVision(regions, { VISION_TIMEOUT_MS: '3000', VISION_ATTEMPT_TIMEOUT_MS: '400' })
  const started = Date.now()
  const result = await vision.identify(visionRequest())
  t.not(result.backendName, 'ptu')
  t.ok(Date.now() - started >= 400 && Date.now() - started < 2000, 'after the attempt timeout, well within the overall one')
  ptu.releaseHung()

  for (const fake of [ptu, west, north]) fake.chatFault = () => ({ kind: 'hang' })
  regions.reset()
  const fresh = regionsVision(regions, { VISION_TIMEOUT_MS: '3000', VISION_ATTEMPT_TIMEOUT_MS: '400' })
  const err = await failure(fresh)
  t.equal(err.code, 'UPSTREAM_TIMEOUT')
  t.strictSame(regions.calls(), { ptu: 1, west: 1, north: 1 }, 'each backend once, never twice')
  for (const fake of [ptu, west, north]) fake.releaseHung()

  regions.reset()
  const short = regionsVision(regions, { VISION_TIMEOUT_MS: '600', VISION_ATTEMPT_TIMEOUT_MS: '400' })
  const late = await failure(short)
  t.equal(late.code, 'UPSTREAM_TIMEOUT')
  t.equal(regions.calls().ptu! + regions.calls().west! + regions.calls().north!, 2, 'the second attempt gets only the time left; no third')
  for (const fake of [ptu, west, north]) fake.releaseHung()
})

t.test('400-class answers are never retried on another backend', async t => {
  const cases = [
    { fault: { kind: 'content-filter-prompt' } as const, code: 'CONTENT_FILTERED' },
    { fault: { kind: 'content-filter-completion' } as const, code: 'CONTENT_FILTERED' },
    { fault: { kind: 'refusal' } as const, code: 'MODEL_REFUSED' },
    { fault: { kind: 'status', status: 400 } as const, code: 'BAD_USER_INPUT' },
    { fault: { kind: 'invalid-json' } as const, code: 'UPSTREAM_INVALID_RESPONSE' }
  ]
  const vision = regionsVision(regions)
  for (const { fault, code } of cases) {
    regions.reset()
    ptu.chatFault = () => fault
    const err = await failure(vision)
    t.equal(err.code, code, fault.kind)
    t.equal((regions.calls().west ?? 0) + (regions.calls().north ?? 0), 0, `${fault.kind}: no other backend asked`)
  }
  t.equal(vision.backends?.().find(b => b.name === 'ptu')?.state, 'CLOSED', 'an answer, even a refusal, is not a failure of the backend')
})

t.test('every breaker open: UPSTREAM_UNAVAILABLE at once, with the soonest probe as retryAfter', async t => {
  for (const fake of [ptu, west, north]) fake.chatFault = () => ({ kind: 'status', status: 503 })
  const vision = regionsVision(regions, { VISION_BREAKER_FAILURES: '1', VISION_BREAKER_COOLDOWN_MS: '5000' })
  t.equal((await failure(vision)).code, 'UPSTREAM_UNAVAILABLE', 'each failed once: all open')
  regions.reset()
  const started = Date.now()
  const err = await failure(vision)
  t.equal(err.code, 'UPSTREAM_UNAVAILABLE')
  t.equal(err.retryAfterSeconds, 5)
  t.ok(Date.now() - started < 100, 'at once')
  t.strictSame(regions.calls(), { ptu: 0, west: 0, north: 0 }, 'no backend called')
  t.match(vision.status(), { ready: false, reason: /no Azure OpenAI deployment can take a request/ })
})

t.test('one managed identity: one token fetch for every backend', async t => {
  ptu.chatFault = (_r, index) => index % 2 === 0 ? { kind: 'status', status: 429, retryAfterMs: '1' } : { kind: 'ok' }
  const vision = regionsVision(regions)
  const seen = new Set<string>()
  for (let i = 0; i < 60; i++) seen.add((await vision.identify(visionRequest())).backendName ?? '')
  t.ok(seen.size >= 2, `answered by ${[...seen].join(', ')}`)
  t.equal(vision.tokenStats?.().fetches, 1, 'one token for all')
  const tokens = new Set([ptu, west, north].flatMap(fake => fake.chatRequests.map(r => r.authorization)))
  t.equal(tokens.size, 1, 'the same bearer token went to every region')
})
