// Refresh through the real DefaultAzureCredential with short-lived tokens from the fake. Its own
// process: MSAL's static cache would otherwise hand back a long-lived token from another test.
import t from 'tap'
import { DefaultAzureCredential } from '@azure/identity'
import { pino } from 'pino'
import { FakeAzure } from './support/fake-azure.ts'
import { CachedTokenProvider } from '../src/azure/token-provider.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
fake.applyIdentityEnv()

t.test('real credential, short-lived tokens: refreshed ahead, never expired, no unhandled rejection through an outage', async t => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  fake.tokenLifetimeSec = 4 // MSAL will not cache such tokens: every refresh reaches the fake
  const provider = new CachedTokenProvider({
    credential: new DefaultAzureCredential(),
    credentialName: 'DefaultAzureCredential',
    scope: 'https://cognitiveservices.azure.com/.default',
    timeoutMs: 300,
    log: pino({ level: 'silent' }),
    refreshAheadMs: 2_000,
    minValidityMs: 500,
    retryDelayMs: 200
  })
  const fetchesBefore = fake.tokenRequests.length
  const deadline = Date.now() + 5_000
  let calls = 0
  let expired = 0
  while (Date.now() < deadline) {
    const token = await provider.getToken()
    calls++
    if (!fake.isValidToken(token)) expired++
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  t.equal(expired, 0, `no expired token in ${calls} calls`)
  const fetches = fake.tokenRequests.length - fetchesBefore
  t.ok(fetches >= 2 && fetches < calls / 5, `refreshed ${fetches} times for ${calls} calls`)

  // Outage through expiry, with and without callers waiting.
  fake.tokenFault = 'hang'
  await new Promise(resolve => setTimeout(resolve, 5_000))
  const failed = await provider.getToken().catch((err: Error & { code?: string }) => err.code)
  t.equal(failed, 'AUTH_UNAVAILABLE', String(failed))
  t.equal(fake.maxOutstandingTokenRequests, 1, 'never more than one token request outstanding, outage included')
  fake.tokenFault = 'ok'
  fake.releaseHung()
  // Within the retry delay callers fail at once; then one fetch brings the token back.
  let token: string | undefined
  for (let i = 0; i < 50 && token === undefined; i++) {
    token = await provider.getToken().catch(() => undefined)
    if (token === undefined) await new Promise(resolve => setTimeout(resolve, 25))
  }
  t.ok(token !== undefined && fake.isValidToken(token), 'recovered')
  t.same(unhandled, [], 'no unhandled rejection')
})
