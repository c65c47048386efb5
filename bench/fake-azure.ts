// Child process: the loopback fake Azure (managed identity + chat completions) from test/support,
// answering every chat after a latency run.ts sets over IPC. Chat request records (which hold the
// whole request body, base64 image included) are dropped as they come, so 10,000 calls stay small.
import { FakeAzure } from '../test/support/fake-azure.ts'
import type { FakeMessage, FakeReply } from './lib/protocol.ts'

const fake = await new FakeAzure().start()
let latencyMs = Number(process.env.BENCH_CHAT_LATENCY_MS ?? 0)
let chats = 0
fake.chatFault = () => {
  chats++
  fake.chatRequests.length = 0
  return { kind: 'ok', latencyMs }
}

// The environment our service needs, made by the fake's own applyIdentityEnv (as buildAzureTestApp does).
const env: NodeJS.ProcessEnv = { ...process.env }
fake.applyIdentityEnv(env)

function reply (message: FakeReply): void {
  process.send?.(message)
}

process.on('message', (message: FakeMessage) => {
  switch (message.type) {
    case 'latency':
      latencyMs = message.ms
      reply({ type: 'ok' })
      break
    case 'stats':
      reply({ type: 'stats', tokenRequests: fake.tokenRequests.length, chats, maxInFlightChats: fake.maxInFlightChats })
      break
    case 'stop':
      fake.close().finally(() => process.exit(0))
      break
  }
})
process.on('disconnect', () => process.exit(0))

process.stdout.write(`fake azure listening on ${fake.origin}\n`)
reply({ type: 'listening', origin: fake.origin, env: env as Record<string, string> })
