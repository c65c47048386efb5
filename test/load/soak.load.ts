// Soak: 2,000 identifications at concurrency 64 against the real server process, with the fake
// Azure answering 10 % 429 (retry-after: 0), 5 % 500 and 50–300 ms of latency.
// The process stays up, every answer is data or a coded error, RSS does not grow after warm-up,
// and upstream concurrency never exceeds VISION_MAX_CONCURRENCY.
import t from 'tap'
import http from 'node:http'
import { FakeAzure, type ChatFault } from '../support/fake-azure.ts'
import { identifyBody } from '../support/multipart.ts'
import * as images from '../support/images.ts'
import {
  byLabels, countBy, get, identify, mb, RssSampler, runPool, scrape, seededRandom, sleep, startServer, stopServer, logLines,
  type Outcome
} from './support.ts'

const TOTAL = Number(process.env.SOAK_REQUESTS ?? 2000)
const CONCURRENCY = 64
const WARM_UP = 200
const MAX_CONCURRENCY = 16
const CLIENT_TIMEOUT_MS = 60_000 // > queue timeout (30 s) + vision timeout (20 s): a TIMEOUT is a hang
const RSS_GROWTH_LIMIT = 0.2
const HEAP_MB = 256

t.test(`soak: ${TOTAL} identifications at concurrency ${CONCURRENCY}, 10 % 429, 5 % 500, 50–300 ms`, { timeout: 150_000 }, async t => {
  const fake = await new FakeAzure().start()
  t.teardown(() => fake.close())
  const random = seededRandom(Number(process.env.SOAK_SEED ?? 20240605))
  const injected = { ok: 0, 429: 0, 500: 0 }
  fake.chatFault = (): ChatFault => {
    const roll = random()
    const latencyMs = 50 + Math.floor(random() * 250)
    if (roll < 0.10) { injected[429]++; return { kind: 'status', status: 429, retryAfter: '0', latencyMs } }
    if (roll < 0.15) { injected[500]++; return { kind: 'status', status: 500, latencyMs } }
    injected.ok++
    return { kind: 'ok', latencyMs }
  }

  const server = await startServer(fake, {
    VISION_MAX_CONCURRENCY: String(MAX_CONCURRENCY),
    VISION_QUEUE_SIZE: '64',
    VISION_QUEUE_TIMEOUT_MS: '30000',
    VISION_TIMEOUT_MS: '20000',
    // A bounded heap, as a container's memory limit gives: left to size itself on this 24 GB machine,
    // V8 grows the old space lazily (RSS +40 % over 2,000 requests with heap used still falling back
    // after each major GC), which is no leak but would make an RSS bound meaningless.
    NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}`
  })
  t.teardown(() => stopServer(server))

  const photo = await images.jpeg(320, 240)
  const body = await identifyBody(photo)
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY })
  t.teardown(() => agent.destroy())

  const sampler = new RssSampler(server.pid)
  t.teardown(() => sampler.stop())
  const rssAtStart = sampler.sample()
  let rssAfterWarmUp = 0
  const outcomes: Outcome[] = []
  const started = performance.now()

  await runPool(TOTAL, CONCURRENCY, async () => {
    const outcome = await identify(server.origin, body, { agent, timeoutMs: CLIENT_TIMEOUT_MS })
    outcomes.push(outcome)
    if (outcomes.length === WARM_UP) rssAfterWarmUp = sampler.sample()
  })
  const durationMs = performance.now() - started
  await sleep(500) // let the last responses' buffers go
  const rssAtEnd = sampler.sample()
  sampler.stop()

  // The process is up and answering.
  t.equal(server.child.exitCode, null, 'the process is still running')
  t.equal(server.child.signalCode, null, 'and was not killed')
  t.same(logLines(server.output()), [], 'no error-level line in the server log')
  t.equal((await get(server.origin, '/health/live')).status, 200, '/health/live 200')

  // Every answer is data or a coded error; nothing hung.
  const byCode = countBy(outcomes, o => o.code)
  const byStatus = countBy(outcomes, o => String(o.status))
  t.equal(outcomes.length, TOTAL, 'every request got an outcome')
  const uncoded = outcomes.filter(o => o.status === null || o.code === 'NO_CODE')
  t.same(uncoded.map(o => `${o.status} ${o.code}`).slice(0, 10), [], 'every response is data or has errors[0].extensions.code (no hang, no network error)')
  t.notOk(byCode.INTERNAL_SERVER_ERROR, 'no INTERNAL_SERVER_ERROR')
  const status500 = outcomes.filter(o => o.status === 500)
  t.ok(status500.every(o => o.code !== 'NO_CODE'), 'no HTTP 500 without a code')
  t.ok((byCode.OK ?? 0) > TOTAL * 0.9, `most succeed (${byCode.OK ?? 0}/${TOTAL})`)
  t.ok(injected[429] > 0 && injected[500] > 0, `faults were injected (${injected[429]} × 429, ${injected[500]} × 500 of ${injected[429] + injected[500] + injected.ok} upstream calls)`)

  // The server's own account agrees with the client's.
  const samples = await scrape(server.origin)
  const serverOutcomes = byLabels(samples, 'agrivision_identifications_total')
  const serverOk = serverOutcomes.get('outcome="OK",backend="AZURE_OPENAI"') ?? 0
  t.equal(serverOk, byCode.OK ?? 0, 'agrivision_identifications_total{outcome="OK"} matches the client count')
  t.equal(byLabels(samples, 'agrivision_admission_active').get(''), 0, 'no slot held at the end')
  t.equal(byLabels(samples, 'agrivision_admission_queued').get(''), 0, 'nobody queued at the end')

  // Upstream concurrency is bounded by the admission gate.
  t.ok(fake.maxInFlightChats <= MAX_CONCURRENCY, `upstream concurrency ${fake.maxInFlightChats} <= VISION_MAX_CONCURRENCY ${MAX_CONCURRENCY}`)
  t.equal(fake.inFlightChats, 0, 'no upstream call left open')

  // Memory: no growth after warm-up.
  t.ok(rssAfterWarmUp > 0, 'RSS read after warm-up')
  t.ok(rssAtEnd <= rssAfterWarmUp * (1 + RSS_GROWTH_LIMIT),
    `RSS at the end ${mb(rssAtEnd)} within ${RSS_GROWTH_LIMIT * 100} % of after warm-up ${mb(rssAfterWarmUp)}`)

  const latencies = outcomes.map(o => o.ms).sort((a, b) => a - b)
  const pct = (p: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0)
  t.comment(`soak: ${outcomes.length} requests in ${(durationMs / 1000).toFixed(1)} s (${(outcomes.length / durationMs * 1000).toFixed(0)} req/s), ` +
    `outcomes ${JSON.stringify(byCode)}, HTTP ${JSON.stringify(byStatus)}, ` +
    `upstream calls ${fake.chatRequests.length} (${injected[429]} × 429, ${injected[500]} × 500), ` +
    `max upstream concurrency ${fake.maxInFlightChats}/${MAX_CONCURRENCY}, ` +
    `RSS start ${mb(rssAtStart)} / after warm-up ${mb(rssAfterWarmUp)} / end ${mb(rssAtEnd)} / peak ${mb(sampler.peak)}, ` +
    `latency p50 ${pct(0.5)} ms p99 ${pct(0.99)} ms max ${pct(1)} ms, warn lines ${logLines(server.output(), 40).length}, token fetches ${fake.tokenRequests.length}, heap cap ${HEAP_MB} MB`)
})
