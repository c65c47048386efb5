// REDIS_URL: two instances share one rate-limit budget per caller through a real Redis
// (Debian's redis-server, started here on loopback, installed by .ci/run).
import t from 'tap'
import { buildTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'
import { startRedis } from './support/redis-server.ts'

const redisUrl = await startRedis(t)

t.test('two instances, one budget', async t => {
  const env = { RATE_LIMIT_PER_MINUTE: '4', REDIS_URL: redisUrl }
  const a = await buildTestApp(t, { env })
  const b = await buildTestApp(t, { env })
  const photo = await images.jpeg(16, 16)
  const statuses: number[] = []
  for (const app of [a, b, a, b, a, b]) {
    const res = await app.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(photo)) })
    statuses.push(res.statusCode)
  }
  t.same(statuses, [200, 200, 200, 200, 429, 429], 'the fifth identification is refused, whichever instance gets it')
})
