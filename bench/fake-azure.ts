// Child process: the loopback fake Azure (managed identity + chat completions) from test/support,
// answering every chat a latency after its arrival that run.ts sets over IPC. Chat request records (which hold the
// whole request body, base64 image included) are dropped as they come, so 10,000 calls stay small.
// BENCH_FAKE_ANSWERS=adaptive (scenario `adaptive`): answers depend on the photo (its mean colour, see
// bench/lib/adaptive-corpus.ts) and on the detail sent, and usage charges the image tokens of that detail.
import { FakeAzure, colourKey, detailAwareAnswers, imageFromChat, type ChatFault } from '../test/support/fake-azure.ts'
import { corpus } from './lib/adaptive-corpus.ts'
import type { FakeMessage, FakeReply } from './lib/protocol.ts'

const fake = await new FakeAzure().start()
let latencyMs = Number(process.env.BENCH_CHAT_LATENCY_MS ?? 0)
let chats = 0
const byDetail: Record<string, number> = {}
const adaptive = process.env.BENCH_FAKE_ANSWERS === 'adaptive'
const answer: (record: Parameters<FakeAzure['chatFault']>[0], index: number) => ChatFault | Promise<ChatFault> = adaptive
  ? detailAwareAnswers(new Map(corpus().map(p => [colourKey(p.rgb), { low: p.low, high: p.high }])))
  : () => ({ kind: 'ok' })
if (adaptive) fake.usageByDetail = true
fake.chatFault = async (record, index) => {
  chats++
  if (adaptive) {
    const detail = imageFromChat(record).detail ?? 'none'
    byDetail[detail] = (byDetail[detail] ?? 0) + 1
  }
  const fault = await answer(record, index)
  fake.chatRequests.length = 0
  // Answered `latencyMs` after the request arrived, the fake's own work (reading and JSON-parsing a 140 KB body, on a core
  // it shares with the load generator) included, as a remote service's latency includes its own: ours is not charged
  // for the fake's CPU.
  return fault.kind === 'ok' ? { ...fault, latencyMs: Math.max(0, latencyMs - (Date.now() - record.receivedAt)) } : fault
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
      reply({ type: 'stats', tokenRequests: fake.tokenRequests.length, chats, maxInFlightChats: fake.maxInFlightChats, byDetail: { ...byDetail } })
      break
    case 'stop':
      fake.close().finally(() => process.exit(0))
      break
  }
})
process.on('disconnect', () => process.exit(0))

process.stdout.write(`fake azure listening on ${fake.origin}\n`)
reply({ type: 'listening', origin: fake.origin, env: env as Record<string, string> })
