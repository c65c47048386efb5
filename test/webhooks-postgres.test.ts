// Webhooks on PostgreSQL: the outbox written with the records, the rules that touch the database (retries,
// 410, the delivery log), and two instances sharing one database: every event delivered, none twice at once
// (FOR UPDATE SKIP LOCKED and leases), whichever instance recorded it.
import t from 'tap'
import { startPostgres, createDatabase } from './support/postgres.ts'
import { internalsOf } from '../src/webhooks/plugin.ts'
import { startReceiver, verifies } from './support/webhook-receiver.ts'
import { buildWebhookApp, createEndpoint, deliveries, endpoints, identify, sleep, waitFor } from './support/webhooks.ts'
import { historyInternals } from '../src/history/plugin.ts'

const server = await startPostgres(t)
let databases = 0
const freshDatabase = async (): Promise<string> => await createDatabase(server.url, `webhooks_${++databases}`)

t.test('PostgreSQL: the outbox is written with the records; retries and 410', async t => {
  const url = await freshDatabase()
  let hookCalls = 0
  const receiver = await startReceiver(t, request => request.path === '/gone' ? { status: 410 } : ++hookCalls <= 2 ? { status: 500 } : { status: 200 })
  const app = await buildWebhookApp(t, { DATABASE_URL: url })
  const { id: endpointId, secret } = await createEndpoint(app, receiver.url())
  const gone = await createEndpoint(app, receiver.url('/gone'))
  const id = await identify(app)
  await waitFor(async () => (await deliveries(app, endpointId)).edges[0]?.node.state === 'SUCCEEDED', 30_000, 'success')
  const ours = receiver.received.filter(r => r.path === '/hook')
  t.equal(ours.length, 3)
  t.ok(ours.every(r => r.webhookId === `msg_${id}` && verifies(secret, r)))
  await waitFor(async () => (await endpoints(app)).find(e => e.id === gone.id)?.enabled === false, 30_000, 'disabled by 410')
  t.match((await endpoints(app)).find(e => e.id === gone.id), { disabledReason: /410/ })
  const rows = await historyInternals(app.history!).store.db.selectFrom('webhook_deliveries').select(['endpoint_id', 'message_id']).execute()
  t.equal(rows.length, 2, 'one outbox row per endpoint, written with the record')
})

t.test('two instances sharing PostgreSQL deliver every event once', async t => {
  const url = await freshDatabase()
  const receiver = await startReceiver(t, () => ({ status: 200, delayMs: 20 }))
  const a = await buildWebhookApp(t, { DATABASE_URL: url, WEBHOOK_POLL_MS: '20' })
  const b = await buildWebhookApp(t, { DATABASE_URL: url, WEBHOOK_POLL_MS: '20' })
  const { secret } = await createEndpoint(a, receiver.url())
  // Recorded by both; each instance wakes on its own identifications and polls for the other's.
  const ids: string[] = []
  for (let i = 0; i < 30; i++) ids.push(...await Promise.all([identify(a), identify(b)]))
  await waitFor(() => new Set(receiver.received.map(r => r.webhookId)).size === ids.length, 20_000, 'all delivered')
  await sleep(500)
  const counts = new Map<string, number>()
  for (const r of receiver.received) counts.set(r.webhookId, (counts.get(r.webhookId) ?? 0) + 1)
  t.same([...counts.values()].filter(n => n > 1), [], 'no event sent twice')
  t.equal(receiver.received.length, ids.length)
  t.ok(receiver.received.every(r => verifies(secret, r)))
  const owners = await historyInternals(a.history!).store.db.selectFrom('webhook_attempts').select('delivery_id').execute()
  t.equal(owners.length, ids.length, 'one attempt each')
  t.ok(internalsOf(a.webhooks!).worker.attempted > 0 && internalsOf(b.webhooks!).worker.attempted > 0,
    `both instances delivered (${internalsOf(a.webhooks!).worker.attempted} + ${internalsOf(b.webhooks!).worker.attempted})`)
})

t.test('an attempt claimed by an instance that died is taken up by another when its lease runs out', async t => {
  const url = await freshDatabase()
  const receiver = await startReceiver(t)
  const dead = await buildWebhookApp(t, { DATABASE_URL: url })
  await internalsOf(dead.webhooks!).worker.stop() // it records, but delivers nothing: as if killed mid-attempt
  const { secret } = await createEndpoint(dead, receiver.url())
  const id = await identify(dead)
  await dead.history!.flushed()
  const claimed = await internalsOf(dead.webhooks!).store.claim('killed-instance', 10, 1500, [])
  t.equal(claimed.length, 1, 'the dead instance held the claim')
  const claimedAt = performance.now()
  // A live instance polls meanwhile and must not take it before the lease expires.
  const live = await buildWebhookApp(t, { DATABASE_URL: url, WEBHOOK_POLL_MS: '50' })
  await waitFor(() => receiver.received.length === 1, 30_000, 'delivered by the live instance')
  const waited = receiver.received[0]!.at - claimedAt
  t.ok(waited >= 1300, `taken up once the lease ran out (${Math.round(waited)} ms)`)
  t.equal(receiver.received[0]!.webhookId, `msg_${id}`)
  t.ok(verifies(secret, receiver.received[0]!))
  t.ok(internalsOf(live.webhooks!).worker.attempted === 1)
})
