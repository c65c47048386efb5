// An identity endpoint that issues tokens shorter than the minimum validity (security review, issue 7,
// item A): through the real DefaultAzureCredential (its own process: MSAL's cache starts empty; MSAL
// caches no token under 5 minutes, so every fetch reaches the fake and is counted). Such a token used to
// be refetched on every request and readiness stayed false forever.
import { Writable } from 'node:stream'
import t from 'tap'
import { pino } from 'pino'
import { DefaultAzureCredential } from '@azure/identity'
import { FakeAzure } from './support/fake-azure.ts'
import { buildAzureTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'
import { CachedTokenProvider } from '../src/azure/token-provider.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
const photo = await images.jpeg(40, 30)
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

function capture (): { log: ReturnType<typeof pino>, entries: () => Array<Record<string, unknown>>, text: () => string } {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  return { log: pino({ level: 'info' }, stream), entries: () => lines.map(line => JSON.parse(line)), text: () => lines.join('') }
}
const shortLivedWarnings = (entries: Array<Record<string, unknown>>): number =>
  entries.filter(e => typeof e.msg === 'string' && e.msg.includes('short-lived access tokens')).length

t.test('20 s tokens with a 30 s minimum validity: used, ready, few fetches, logged once', async t => {
  fake.tokenLifetimeSec = 20
  const logs = capture()
  const { app, vision } = await buildAzureTestApp(t, fake, { VISION_MAX_CONCURRENCY_PER_CALLER: '1024' }, logs.log)
  await vision.warmUp?.()
  t.equal(fake.tokenRequests.length, 1, 'one fetch at start-up')

  const body = await identifyBody(photo)
  for (let round = 0; round < 5; round++) {
    const answers = await Promise.all([
      ...Array.from({ length: 10 }, () => app.inject({ method: 'POST', url: '/graphql', ...body })),
      ...Array.from({ length: 4 }, () => app.inject('/health/ready'))
    ])
    for (const res of answers.slice(0, 10)) t.equal(res.json().data?.identifyVehicle?.backend, 'AZURE_OPENAI', 'identified')
    for (const res of answers.slice(10)) t.equal(res.statusCode, 200, 'ready')
    await sleep(100)
  }
  t.equal(vision.status().ready, true, 'ready')
  t.equal(fake.tokenRequests.length, 1, `still one fetch after 50 identifications and 20 readiness checks (${fake.tokenRequests.length})`)
  t.equal(new Set(fake.chatRequests.map(r => r.authorization)).size, 1, 'all with the same token')
  t.equal(shortLivedWarnings(logs.entries()), 1, 'the short lifetime is logged once')
  t.notOk(logs.text().includes('fake-access-token-'), 'no token in the log')
})

t.test('4 s tokens, default minimum validity: refreshed early in the background, never expired, logged once', async t => {
  fake.tokenLifetimeSec = 4
  const logs = capture()
  const provider = new CachedTokenProvider({
    credential: new DefaultAzureCredential(),
    credentialName: 'DefaultAzureCredential',
    scope: 'https://cognitiveservices.azure.com/.default',
    timeoutMs: 1000,
    log: logs.log
  })
  const before = fake.tokenRequests.length
  const started = Date.now()
  let calls = 0
  let expired = 0
  let slow = 0
  while (Date.now() - started < 6_000) {
    const asked = performance.now()
    const token = await provider.getToken()
    if (performance.now() - asked > 100) slow++
    calls++
    if (!fake.isValidToken(token)) expired++
    if (calls % 10 === 0) provider.refreshIfStale() // readiness checks too
    await sleep(20)
  }
  const fetches = fake.tokenRequests.length - before
  t.equal(expired, 0, `no expired token in ${calls} calls`)
  t.ok(provider.hasValidToken(), 'a valid token at the end')
  // A 4 s token (whole seconds: 3–4 s) is refreshed at half its life: one fetch per ~2 s, not one per call.
  t.ok(fetches >= 2 && fetches <= 6, `${fetches} fetches in 6 s for ${calls} calls`)
  t.ok(slow <= 2, `callers rarely waited (${slow} of ${calls} calls took over 100 ms)`)
  t.equal(shortLivedWarnings(logs.entries()), 1, `logged once, not per fetch (${fetches} fetches)`)
})
