// Vision as providers: the result cache's "who answers" string (part of every cached answer's key, so it
// must not change across a deploy), the generic failover with providers that are not Azure, and the
// vision plugin's lifecycle (app.vision, warm-up once listening, closed with the app, its metrics).
import t from 'tap'
import { pino } from 'pino'
import { buildApp } from '../src/app.ts'
import { UpstreamUnavailableError } from '../src/errors.ts'
import { createFailover } from '../src/vision/failover/failover.ts'
import { createVision } from '../src/vision/index.ts'
import type { VisionProvider } from '../src/vision/provider.ts'
import { createSimulatedProvider, createSimulatedVision } from '../src/vision/simulated.ts'
import type { VisionService } from '../src/vision/types.ts'
import { buildTestApp, tempDataDir, testConfig } from './helper.ts'
import { identify } from './support/http.ts'
import { jpeg } from './support/images.ts'
import { visionRequest } from './support/regions.ts'

const silent = pino({ level: 'silent' })

t.test('the cache identity is byte for byte what it was: "simulated", or "azure:" and every endpoint/deployment, sorted', async t => {
  t.equal(createSimulatedVision().cacheIdentity?.(), 'simulated')
  t.equal(createVision(testConfig(), silent).cacheIdentity?.(), 'simulated', 'no Azure configured')

  const single = createVision(testConfig({ AZURE_OPENAI_ENDPOINT: 'https://west.example.com/', AZURE_OPENAI_DEPLOYMENT: 'gpt-4o' }), silent)
  t.equal(single.cacheIdentity?.(), 'azure:https://west.example.com/gpt-4o', 'one deployment (the endpoint\'s trailing slash dropped)')

  const backends = [
    { name: 'paygo', endpoint: 'https://sweden.example.com', deployment: 'gpt-4o', priority: 1, weight: 2 },
    { name: 'ptu', endpoint: 'https://west.example.com', deployment: 'gpt-4o-ptu', priority: 0 },
    { name: 'north', endpoint: 'https://north.example.com', deployment: 'gpt-4o', priority: 1 }
  ]
  const several = createVision(testConfig({ AZURE_OPENAI_BACKENDS: JSON.stringify(backends) }), silent)
  t.equal(several.cacheIdentity?.(),
    'azure:https://north.example.com/gpt-4o,https://sweden.example.com/gpt-4o,https://west.example.com/gpt-4o-ptu',
    'several: sorted, whatever their order, priority, weight or name')
  const reordered = createVision(testConfig({ AZURE_OPENAI_BACKENDS: JSON.stringify([...backends].reverse().map((b, i) => ({ ...b, name: `n${i}` }))) }), silent)
  t.equal(reordered.cacheIdentity?.(), several.cacheIdentity?.(), 'the same deployments listed otherwise: the same identity')
})

/** The simulated answer, counting calls, with the cache identity it is given. */
function identifiedAs (cacheIdentity: string): VisionService & { calls: number } {
  const inner = createSimulatedVision()
  const vision = {
    backend: inner.backend,
    calls: 0,
    status: () => inner.status(),
    cacheIdentity: () => cacheIdentity,
    identify: async (request: Parameters<VisionService['identify']>[0]) => { vision.calls++; return await inner.identify(request) }
  }
  return vision
}

t.test('history keys cached answers by the service\'s cache identity: another model is a miss, the same one a hit', async t => {
  const env = { DATA_DIR: tempDataDir(), RESULT_CACHE_TTL_S: '3600' }
  const photo = await jpeg(320, 240)
  const ask = async (vision: VisionService): Promise<boolean> => {
    const app = await buildApp({ config: testConfig(env), vision })
    try {
      await app.ready()
      const res = await identify(app, photo)
      t.notOk(res.body.errors)
      await app.history!.flushed()
      return res.body.data.identifyVehicle.cached as boolean
    } finally {
      await app.close()
    }
  }
  const one = identifiedAs('azure:https://one.example.com/gpt-4o')
  t.equal(await ask(one), false, 'first time: asked')
  const two = identifiedAs('azure:https://two.example.com/gpt-4o')
  t.equal(await ask(two), false, 'another identity: not served the first one\'s answer')
  t.equal(two.calls, 1)
  const oneAgain = identifiedAs('azure:https://one.example.com/gpt-4o')
  t.equal(await ask(oneAgain), true, 'the same identity after a restart: a hit')
  t.equal(oneAgain.calls, 0)
})

/** A provider that is not Azure: fails with a 503-like error `failures` times, then answers. */
function flakyProvider (name: string, priority: number, failures: number): VisionProvider & { calls: number } {
  const simulated = createSimulatedProvider()
  const provider = {
    ...simulated,
    name,
    priority,
    calls: 0,
    async identify (...args: Parameters<VisionProvider['identify']>) {
      provider.calls++
      if (provider.calls <= failures) throw new UpstreamUnavailableError(`${name} is down`)
      return await simulated.identify(...args)
    },
    classify: (error: unknown) => ({ outcome: 'error' as const, tryNext: true, error }),
    cacheIdentity: () => `model/${name}`
  }
  return provider
}

t.test('the failover works on any provider: priority, failover, breaker, cache identity', async t => {
  const first = flakyProvider('first', 0, 2)
  const second = flakyProvider('second', 1, 0)
  const vision = createFailover([second, first], { timeoutMs: 5000, breaker: { failureThreshold: 2, coolDownMs: 60_000 }, label: 'Test', cacheNamespace: 'test' })
  t.equal(vision.cacheIdentity?.(), 'test:model/first,model/second')
  t.equal(vision.backend, 'SIMULATED')
  const outcomes: string[] = []
  vision.onAttempt?.(a => { outcomes.push(`${a.backend}:${a.outcome}`) })

  t.equal((await vision.identify(visionRequest())).backendName, 'second', 'the first failed: the next priority answered')
  t.equal((await vision.identify(visionRequest())).backendName, 'second')
  t.match(vision.backends?.().find(b => b.name === 'first'), { state: 'OPEN', consecutiveFailures: 2 }, 'two failures opened its breaker')
  t.equal((await vision.identify(visionRequest())).backendName, 'second', 'an open breaker keeps requests away')
  t.equal(first.calls, 2)
  t.strictSame(outcomes, ['first:error', 'second:ok', 'first:error', 'second:ok', 'second:ok'])
  t.equal(vision.status().ready, true, 'one provider can still take requests')
})

t.test('the failover with every provider failing: the last failure, and not ready while every breaker is open', async t => {
  const only = flakyProvider('only', 0, 100)
  const vision = createFailover([only], { timeoutMs: 5000, breaker: { failureThreshold: 1, coolDownMs: 60_000 }, label: 'Test', cacheNamespace: 'test' })
  await t.rejects(vision.identify(visionRequest()), { code: 'UPSTREAM_UNAVAILABLE', message: 'only is down' })
  await t.rejects(vision.identify(visionRequest()), { code: 'UPSTREAM_UNAVAILABLE', message: /No Test deployment can take the request now/ })
  t.equal(only.calls, 1, 'the open breaker kept the second request away')
  t.match(vision.status(), { ready: false, reason: /no Test deployment can take a request/ })
})

t.test('the vision plugin: app.vision, its metrics, warm-up once listening, closed once with the app', async t => {
  const inner = createSimulatedVision()
  const seen = { warmUps: 0, closes: 0, measuring: false }
  const vision: VisionService = {
    backend: inner.backend,
    identify: async (request) => await inner.identify(request),
    status: () => inner.status(),
    async warmUp () { seen.warmUps++ },
    async close () { seen.closes++ },
    measure (metrics) {
      seen.measuring = true
      metrics.gauge('agrivision_test_provider_ready', 'A provider\'s own metric.', () => 1)
      return () => { seen.measuring = false }
    }
  }
  const app = await buildTestApp(t, { vision })
  t.equal(app.vision, vision)
  t.equal(seen.warmUps, 0, 'not warmed up by ready() alone (tests, inject)')
  const metrics = await app.inject('/metrics')
  t.match(metrics.body, /agrivision_test_provider_ready 1/, 'the service\'s own metrics are registered')
  t.match(metrics.body, /agrivision_token_fetches_total 0/, 'the token counters are there, 0 without a credential')

  await app.listen({ host: '127.0.0.1', port: 0 })
  for (let i = 0; i < 100 && seen.warmUps === 0; i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.equal(seen.warmUps, 1, 'warmed up once listening')
  await app.close()
  t.equal(seen.closes, 1, 'closed with the app')
  t.equal(seen.measuring, false, 'measuring stopped')
})
