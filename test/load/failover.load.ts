// Issue 12's numbers, with the real openai client against loopback fakes standing for regions:
//  1. 10,000 identifications over three backends: one token fetch.
//  2. Two backends, the first answering 429 to half its requests: no UPSTREAM_RATE_LIMITED, and the p50
//     added by spilling over (against the same calls with no 429s, in this run) under 5 ms.
//  3. The first backend refusing connections: its breaker opens after at most 3 failed attempts, no
//     request waits on it afterwards, and once it is back it takes traffic again within 30 s (defaults).
//  4. Every backend held by 429: the caller's error carries the soonest retryAfter, and no backend is
//     called before its hold ends.
import t from 'tap'
import { AppError, RetryableError } from '../../src/errors.ts'
import type { VisionService } from '../../src/vision/types.ts'
import { regionsVision, startRegions, visionRequest } from '../support/regions.ts'
import { sleep, waitFor } from './support.ts'

const regions = await startRegions(t, [
  { name: 'first', priority: 0 },
  { name: 'second', priority: 1 },
  { name: 'third', priority: 1 }
])
const fakes = regions.fakes as Record<'first' | 'second' | 'third', NonNullable<typeof regions.fakes[string]>>

function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number
}

async function timed (vision: VisionService): Promise<{ ms: number, backendName: string | null }> {
  const started = performance.now()
  const { backendName } = await vision.identify(visionRequest())
  return { ms: performance.now() - started, backendName }
}

t.test('one token fetch for 10,000 identifications spread over three backends', async t => {
  const vision = regionsVision(regions, {
    AZURE_OPENAI_BACKENDS: JSON.stringify(['first', 'second', 'third'].map(name => ({
      name, endpoint: fakes[name as 'first'].origin, deployment: `gpt-4o-${name}`, priority: 0
    })))
  })
  regions.reset()
  const before = regions.identity.tokenRequests.length
  let next = 0
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < 10_000) {
      next++
      await vision.identify(visionRequest())
    }
  }))
  const calls = regions.calls()
  t.comment(`10,000 identifications: ${JSON.stringify(calls)}; token requests to the identity endpoint: ${regions.identity.tokenRequests.length - before}`)
  t.equal((calls.first ?? 0) + (calls.second ?? 0) + (calls.third ?? 0), 10_000)
  for (const name of ['first', 'second', 'third']) t.ok((calls[name] ?? 0) > 2500, `${name} took its share`)
  t.equal(regions.identity.tokenRequests.length - before, 1, 'one token fetch')
  t.equal(vision.tokenStats?.().fetches, 1)
})

t.test('the first backend answering 429 to half its requests: no caller sees it; spilling over adds < 5 ms at p50', async t => {
  const vision = regionsVision(regions)
  for (let i = 0; i < 50; i++) await vision.identify(visionRequest()) // warm connections to both
  const baseline: number[] = []
  for (let i = 0; i < 500; i++) baseline.push((await timed(vision)).ms)

  let served = 0
  // Every other request to the first backend is throttled, with Azure's retry-after-ms of 1 ms.
  fakes.first.chatFault = () => (served++ % 2 === 1 ? { kind: 'status', status: 429, retryAfterMs: '1' } : { kind: 'ok' })
  let throttled = 0
  const stop = vision.onAttempt?.(a => { if (a.outcome === 'rate_limited') throttled++ })
  const spilled: number[] = []
  const direct: number[] = []
  let errors = 0
  for (let i = 0; i < 500; i++) {
    const seen = throttled
    try {
      const { ms } = await timed(vision)
      ;(throttled > seen ? spilled : direct).push(ms)
    } catch (err) {
      errors++
      t.comment(`error: ${(err as AppError).code}`)
    }
    await sleep(2) // past the 1 ms hold, so the first backend keeps being asked
  }
  stop?.()
  fakes.first.chatFault = () => ({ kind: 'ok' })
  const added = percentile(spilled, 0.5) - percentile(baseline, 0.5)
  t.comment(`baseline p50 ${percentile(baseline, 0.5).toFixed(2)} ms; spilled over (${spilled.length}) p50 ${percentile(spilled, 0.5).toFixed(2)} ms; ` +
    `direct (${direct.length}) p50 ${percentile(direct, 0.5).toFixed(2)} ms; added by spilling: ${added.toFixed(2)} ms`)
  t.equal(errors, 0, 'no caller saw an error (no UPSTREAM_RATE_LIMITED)')
  t.ok(spilled.length >= 150, `half the first backend's answers were 429s: ${spilled.length} requests spilled over`)
  t.ok(added < 5, `p50 added by spilling over: ${added.toFixed(2)} ms < 5 ms`)
})

t.test('the first backend refusing connections: the breaker opens within 3 attempts; back in traffic within 30 s', async t => {
  const vision = regionsVision(regions) // default breaker: 3 failures, 10 s cool-down
  await vision.identify(visionRequest())
  const failures: number[] = []
  const stop = vision.onAttempt?.(a => { if (a.backend === 'first' && a.outcome !== 'ok') failures.push(a.seconds) })
  await fakes.first.stopListening()
  const latencies: number[] = []
  for (let i = 0; i < 100; i++) latencies.push((await timed(vision)).ms)
  t.comment(`while down: ${failures.length} failed attempts on it; after those, p99 of the next 97 requests ${percentile(latencies.slice(3), 0.99).toFixed(2)} ms`)
  t.ok(failures.length <= 3, `${failures.length} failed attempts before the breaker opened (at most 3)`)
  t.equal(vision.backends?.().find(b => b.name === 'first')?.state, 'OPEN')

  await fakes.first.start()
  const backAt = performance.now()
  regions.reset()
  const back = await waitFor(async () => (await timed(vision)).backendName === 'first', 30_000, 100)
  const tookMs = performance.now() - backAt
  stop?.()
  t.comment(`back in traffic ${(tookMs / 1000).toFixed(1)} s after it listened again`)
  t.ok(back, 'takes traffic again within 30 s')
})

t.test('every backend held by 429: the soonest retryAfter, and no backend called before its hold ends', async t => {
  const vision = regionsVision(regions)
  const holds = { first: 3000, second: 2000, third: 4000 }
  const answeredAt: Record<string, number> = {}
  for (const [name, ms] of Object.entries(holds)) {
    const fake = fakes[name as 'first']
    let once = true
    fake.chatFault = () => {
      if (!once) return { kind: 'ok' }
      once = false
      answeredAt[name] = Date.now()
      return { kind: 'status', status: 429, retryAfterMs: String(ms) }
    }
  }
  regions.reset()
  let error: unknown
  try { await vision.identify(visionRequest()) } catch (err) { error = err }
  t.ok(error instanceof RetryableError, 'refused')
  t.equal((error as AppError).code, 'UPSTREAM_RATE_LIMITED')
  t.equal((error as RetryableError).retryAfterSeconds, 2, 'the soonest hold (2 s of 3, 2 and 4)')

  const outcomes: string[] = []
  const deadline = Date.now() + 4500
  while (Date.now() < deadline) {
    try { outcomes.push((await vision.identify(visionRequest())).backendName ?? '') } catch (err) { outcomes.push((err as AppError).code) }
    await sleep(20)
  }
  for (const [name, ms] of Object.entries(holds)) {
    const fake = fakes[name as 'first']
    const early = fake.chatRequests.filter(r => r.at > (answeredAt[name] as number) && r.at < (answeredAt[name] as number) + ms)
    t.equal(early.length, 0, `${name}: no call during its ${ms} ms hold`)
  }
  t.ok(outcomes.includes('second'), 'second answers once its hold ends')
  t.comment(`during the holds: ${outcomes.filter(o => o === 'UPSTREAM_RATE_LIMITED').length} fast refusals, then ${outcomes.filter(o => o !== 'UPSTREAM_RATE_LIMITED').length} answers`)
})
