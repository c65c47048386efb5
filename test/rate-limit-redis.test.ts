// REDIS_URL: two instances share one rate-limit budget per caller through a real Redis
// (Debian's redis-server, started here on loopback, installed by .ci/run).
import t from 'tap'
import { buildTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'
import { startRedis } from './support/redis-server.ts'
import { Redis } from 'ioredis'

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

// The counters' keys are part of the deployed state: a new format would reset every caller's budget at
// deploy. @fastify/rate-limit's `app.rateLimit(options)` builds its store with no route, so RedisStore.child
// prefixes `${method}${url}-` with both undefined: the `undefinedundefined-` is the library's, on ioredis 5
// (RESP2) as on 6 (RESP3), and stays. The key generators' prefixes keep the limiters apart.
t.test('the counters keep their keys (a new format would reset them at deploy)', async t => {
  const admin = new Redis(redisUrl)
  t.teardown(() => { admin.disconnect() })
  await admin.flushall()
  const app = await buildTestApp(t, { env: { RATE_LIMIT_PER_MINUTE: '10', GRAPHQL_RATE_LIMIT_PER_MINUTE: '10', REDIS_URL: redisUrl } })
  t.equal(app.redis?.options.protocol, 3, 'ioredis speaks RESP3')
  const photo = await images.jpeg(16, 16)
  for (let i = 0; i < 2; i++) {
    const res = await app.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(photo)) })
    t.equal(res.statusCode, 200)
  }
  const query = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ __typename }' } })
  t.equal(query.statusCode, 200)
  const thumb = await app.inject({ method: 'GET', url: '/thumbnails/nothing-here.webp' })
  t.not(thumb.statusCode, 429)
  const keys = (await admin.keys('*')).sort()
  t.same(keys, [
    'agrivision-rl:undefinedundefined-identify:ip:127.0.0.1',
    'agrivision-rl:undefinedundefined-operation:ip:127.0.0.1',
    'agrivision-rl:undefinedundefined-thumbnail:127.0.0.1'
  ], 'the keys as deployed today')
  t.equal(await admin.get('agrivision-rl:undefinedundefined-identify:ip:127.0.0.1'), '2', 'one count per identification')
  const ttl = await admin.pttl('agrivision-rl:undefinedundefined-identify:ip:127.0.0.1')
  t.ok(ttl > 0 && ttl <= 60_000, `the window expires (${ttl} ms left)`)
})
