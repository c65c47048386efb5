import http from 'node:http'
import { FakeAzure, type ChatFault } from '../support/fake-azure.ts'
import { identifyBody } from '../support/multipart.ts'
import * as images from '../support/images.ts'
import { byLabels, identify, mb, rssBytes, runPool, scrape, seededRandom, startServer, stopServer } from './support.ts'

const TOTAL = Number(process.env.N ?? 6000)
const fake = await new FakeAzure().start()
const random = seededRandom(1)
fake.chatFault = (): ChatFault => {
  const roll = random(); const latencyMs = 50 + Math.floor(random() * 250)
  if (process.env.NOFAULT) return { kind: 'ok', latencyMs }
  if (roll < 0.10) return { kind: 'status', status: 429, retryAfter: '0', latencyMs }
  if (roll < 0.15) return { kind: 'status', status: 500, latencyMs }
  return { kind: 'ok', latencyMs }
}
const extra = process.env.EXTRA_ENV ? JSON.parse(process.env.EXTRA_ENV) : {}
const server = await startServer(fake, { VISION_MAX_CONCURRENCY: '16', ...extra })
const body = await identifyBody(await images.jpeg(320, 240))
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
let done = 0
const report = async () => {
  const s = await scrape(server.origin)
  const heap = byLabels(s, 'nodejs_heap_size_used_bytes').get('') ?? 0
  const ext = byLabels(s, 'nodejs_external_memory_bytes').get('') ?? 0
  console.log(`${done} rss ${mb(rssBytes(server.pid))} heapUsed ${mb(heap)} external ${mb(ext)}`)
}
await report()
await runPool(TOTAL, 64, async () => {
  await identify(server.origin, body, { agent, timeoutMs: 60000 })
  done++
  if (done % 500 === 0) await report()
})
await new Promise(r => setTimeout(r, 2000))
await report()
agent.destroy()
await stopServer(server)
await fake.close()
