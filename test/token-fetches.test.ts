// Token caching through the real DefaultAzureCredential and openai client against the fake Azure:
// a fresh process (tap runs each file alone), so MSAL's process-wide cache starts empty.
import t from 'tap'
import { FakeAzure } from './support/fake-azure.ts'
import { buildAzureTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())

t.test('50 concurrent identifications on a cold start cause exactly 1 token fetch', async t => {
  // 50 at once from one address: no per-caller concurrency limit in the way.
  const { app } = await buildAzureTestApp(t, fake, { VISION_MAX_CONCURRENCY_PER_CALLER: '1024' })
  fake.chatFault = () => ({ kind: 'ok', latencyMs: 20 })
  const photo = await images.jpeg(32, 32)
  const body = await identifyBody(photo)

  const responses = await Promise.all(Array.from({ length: 50 }, () =>
    app.inject({ method: 'POST', url: '/graphql', ...body })))
  for (const res of responses) t.equal(res.json().data?.identifyVehicle?.backend, 'AZURE_OPENAI')
  t.equal(fake.chatRequests.length, 50, '50 upstream calls')
  t.equal(fake.tokenRequests.length, 1, 'exactly one token fetch')
  t.equal(new Set(fake.chatRequests.map(r => r.authorization)).size, 1, 'all with the same token')
})
