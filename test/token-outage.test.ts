// The identity endpoint hangs, then recovers: through the real DefaultAzureCredential (fresh process,
// so MSAL holds no token yet). Requests fail fast with AUTH_UNAVAILABLE, readiness says why, and the
// service recovers by itself.
import t from 'tap'
import { FakeAzure } from './support/fake-azure.ts'
import { buildAzureTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
const photo = await images.jpeg(40, 30)

t.test('a hung token endpoint: AUTH_UNAVAILABLE within AZURE_TOKEN_TIMEOUT_MS, then recovery', async t => {
  fake.tokenFault = 'hang'
  const { app, vision } = await buildAzureTestApp(t, fake, { AZURE_TOKEN_TIMEOUT_MS: '300' })

  t.equal(await vision.warmUp?.(), undefined, 'warm-up does not throw')
  const notReady = await app.inject('/health/ready')
  t.equal(notReady.statusCode, 503)
  t.match(notReady.json().reason, /no access token: the last fetch failed/)
  t.notMatch(notReady.body, /DefaultAzureCredential|127\.0\.0\.1/, 'no credential details on the open health endpoint')

  const started = performance.now()
  const res = await app.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(photo)) })
  t.ok(performance.now() - started < 2000, 'failed fast')
  const error = res.json().errors[0]
  t.equal(error.extensions.code, 'AUTH_UNAVAILABLE')
  t.match(error.message, /DefaultAzureCredential \(AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential\) did not answer/)
  t.equal(fake.chatRequests.length, 0, 'no upstream call without a token')

  // Readiness recovers by itself, with no identification asking for a token.
  fake.tokenFault = 'ok'
  fake.releaseHung()
  const fetchesBefore = fake.tokenRequests.length
  let ready = await app.inject('/health/ready')
  for (let i = 0; i < 100 && ready.statusCode !== 200; i++) {
    await new Promise(resolve => setTimeout(resolve, 100))
    ready = await app.inject('/health/ready')
  }
  t.equal(ready.statusCode, 200, 'ready again after the endpoint recovered, through readiness checks alone')
  t.ok(fake.tokenRequests.length > fetchesBefore, 'a readiness check started the fetch')
  const recovered = await app.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(photo)) })
  t.equal(recovered.json().data?.identifyVehicle?.backend, 'AZURE_OPENAI', 'recovered')
  t.equal((await app.inject('/health/ready')).statusCode, 200)
})
