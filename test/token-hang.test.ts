// A hung identity endpoint must not leak connections (security review, issue 7, item A): through the real
// DefaultAzureCredential (its own process: MSAL's cache starts empty), many requests during the outage
// cause at most one outstanding token fetch, each timed-out fetch's socket is closed, and after recovery
// no connection to the identity endpoint is left open.
import t from 'tap'
import { FakeAzure } from './support/fake-azure.ts'
import { buildAzureTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
const photo = await images.jpeg(40, 30)
const TIMEOUT_MS = 300

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
async function until (what: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!what() && Date.now() < deadline) await sleep(20)
  return what()
}

t.test('hung identity endpoint: one outstanding fetch, its socket closed on timeout, none left after recovery', async t => {
  fake.tokenFault = 'hang'
  // Many identifications at once from one address: no per-caller concurrency limit in the way.
  const { app, vision } = await buildAzureTestApp(t, fake, { AZURE_TOKEN_TIMEOUT_MS: String(TIMEOUT_MS), VISION_MAX_CONCURRENCY_PER_CALLER: '1024' })

  const started = performance.now()
  await vision.warmUp?.()
  const warmUpMs = performance.now() - started
  t.ok(warmUpMs < TIMEOUT_MS + 1000, `warm-up gave up after the timeout (${Math.round(warmUpMs)} ms)`)
  t.equal(fake.tokenRequests.length, 1, 'one token request so far')
  t.ok(await until(() => fake.openTokenSockets === 0, 1000), `the timed-out fetch's socket was closed (open: ${fake.openTokenSockets})`)

  // The outage goes on: many identifications and readiness probes, in waves, over a few timeouts.
  const body = await identifyBody(photo)
  const codes = new Map<string, number>()
  let maxOpenSeen = 0
  const watch = setInterval(() => { maxOpenSeen = Math.max(maxOpenSeen, fake.openTokenSockets) }, 5)
  const outageStarted = Date.now()
  for (let wave = 0; wave < 24; wave++) {
    const answers = await Promise.all([
      ...Array.from({ length: 25 }, () => app.inject({ method: 'POST', url: '/graphql', ...body })),
      ...Array.from({ length: 5 }, () => app.inject('/health/ready'))
    ])
    for (const res of answers.slice(0, 25)) {
      const code = String(res.json().errors?.[0]?.extensions?.code)
      codes.set(code, (codes.get(code) ?? 0) + 1)
    }
    for (const res of answers.slice(25)) t.equal(res.statusCode, 503, 'not ready during the outage')
    await sleep(250)
  }
  clearInterval(watch)
  const outageMs = Date.now() - outageStarted
  t.same([...codes.keys()], ['AUTH_UNAVAILABLE'], `every identification failed with AUTH_UNAVAILABLE (${JSON.stringify(Object.fromEntries(codes))})`)
  t.equal(fake.chatRequests.length, 0, 'no upstream call without a token')
  t.equal(fake.maxOutstandingTokenRequests, 1, 'never more than one token request outstanding at the identity endpoint')
  t.equal(fake.maxOpenTokenSockets, 1, 'never more than one connection to the identity endpoint')
  t.ok(maxOpenSeen <= 1, `sampled open connections stayed at most 1 (${maxOpenSeen})`)
  // One fetch per timeout plus retry delay (3 s by default) at most: not one per request.
  const tokenRequests = fake.tokenRequests.length
  t.ok(tokenRequests >= 2, 'the service kept trying, once per retry delay')
  t.ok(tokenRequests <= 1 + Math.ceil(outageMs / 3000) + 1, `${tokenRequests} token requests for 600 identifications and 120 probes over ${outageMs} ms`)
  t.ok(await until(() => fake.openTokenSockets === 0, 1000), `no connection left open after the last timeout (open: ${fake.openTokenSockets})`)
  t.comment(`during the outage: ${tokenRequests} token requests, at most ${fake.maxOpenTokenSockets} open connection(s)`)

  // Recovery: readiness alone brings the token back, and no connection stays open.
  fake.tokenFault = 'ok'
  fake.releaseHung()
  let ready = await app.inject('/health/ready')
  for (let i = 0; i < 100 && ready.statusCode !== 200; i++) {
    await sleep(100)
    ready = await app.inject('/health/ready')
  }
  t.equal(ready.statusCode, 200, 'ready after the endpoint recovered')
  const recovered = await app.inject({ method: 'POST', url: '/graphql', ...body })
  t.equal(recovered.json().data?.identifyVehicle?.backend, 'AZURE_OPENAI', 'identifications work again')
  t.ok(await until(() => fake.openTokenSockets === 0, 1000), `no connection to the identity endpoint left open after recovery (open: ${fake.openTokenSockets})`)
  t.equal(fake.maxOpenTokenSockets, 1, 'still never more than one at once')
})
