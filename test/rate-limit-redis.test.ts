// REDIS_URL: two instances share one rate-limit budget per caller through a real Redis
// (Debian's redis-server, started here on loopback, installed by .ci/run).
import t from 'tap'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { buildTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

const port = await freePort()
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
t.teardown(() => { redis.kill('SIGKILL') })
await new Promise<void>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('redis-server did not start within 5 s')), 5000)
  redis.on('error', reject)
  redis.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('Ready to accept connections')) { clearTimeout(timer); resolve() } })
})

t.test('two instances, one budget', async t => {
  const env = { RATE_LIMIT_PER_MINUTE: '4', REDIS_URL: `redis://127.0.0.1:${port}` }
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
