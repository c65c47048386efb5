// Webhooks end to end on SQLite, against a loopback receiver that verifies every call with `standardwebhooks`:
// Admin only, the body (the identification as the API shows it, a signed thumbnail URL, no image bytes),
// signatures, a webhook-id stable across retries and redeliveries, the retry schedule, Retry-After on 429/503,
// 410 disabling, five days of failures disabling, the attempt timeout, 64 KB responses, secret rotation,
// deletion stopping deliveries, the delivery log's pages, limits, and the outbox written with the record.
import { join } from 'node:path'
import t from 'tap'
import { internalsOf } from '../src/webhooks/plugin.ts'
import { startReceiver, verifies } from './support/webhook-receiver.ts'
import {
  admin, buildWebhookApp, createEndpoint, deliveries, endpoints, gql, identifier, identify, identifyFailing, sleep, waitFor
} from './support/webhooks.ts'
import { historyInternals } from '../src/history/plugin.ts'
import { openDatabase } from '../src/database/open.ts'
import { migrateToLatest } from '../src/migrations.ts'
import { WebhookStore } from '../src/webhooks/store.ts'
import type { WebhookTables } from '../src/webhooks/tables.ts'
import { tempDataDir } from './helper.ts'
import { holdWrite } from './support/sqlite-other-writer.ts'

t.test('webhook management is for Admin callers only', async t => {
  const app = await buildWebhookApp(t)
  const receiver = await startReceiver(t)
  const refused = await gql(app, `mutation { createWebhookEndpoint(url: "${receiver.url()}", events: [IDENTIFICATION_COMPLETED]) { secret } }`,
    {}, identifier)
  t.equal(refused.body.errors?.[0]?.extensions.code, 'FORBIDDEN')
  const list = await gql(app, '{ webhookEndpoints { id } }', {}, identifier)
  t.equal(list.body.errors?.[0]?.extensions.code, 'FORBIDDEN')
  const anonymous = await gql(app, '{ webhookEndpoints { id } }', {}, {} as typeof admin)
  t.equal(anonymous.statusCode, 401)
  const { id, secret } = await createEndpoint(app, receiver.url(), ['IDENTIFICATION_COMPLETED'], 'dashboard back end')
  t.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/, 'a Standard Webhooks secret')
  const [endpoint] = await endpoints(app)
  t.match(endpoint, { id, url: receiver.url(), events: ['IDENTIFICATION_COMPLETED'], description: 'dashboard back end', enabled: true })
  t.notOk(JSON.stringify(await endpoints(app)).includes(secret), 'the secret is shown once, at creation')
  for (const [what, query] of [
    ['update', `mutation { updateWebhookEndpoint(id: "${id}", description: "x") { id } }`],
    ['rotate', `mutation { rotateWebhookSecret(id: "${id}") { secret } }`],
    ['delete', `mutation { deleteWebhookEndpoint(id: "${id}") }`],
    ['deliveries', `{ webhookDeliveries(endpointId: "${id}") { edges { cursor } } }`],
    ['redeliver', 'mutation { redeliverWebhook(deliveryId: "1") { id } }']
  ] as const) {
    t.equal((await gql(app, query, {}, identifier)).body.errors?.[0]?.extensions.code, 'FORBIDDEN', what)
  }
})

t.test('a completed identification is delivered, signed, with the identification as the API shows it', async t => {
  // A thumbnail is made just after the answer; on a loaded CI machine that can take more than the default 2 s.
  const app = await buildWebhookApp(t, { PUBLIC_BASE_URL: 'https://vision.example.com', WEBHOOK_THUMBNAIL_WAIT_MS: '20000' })
  const receiver = await startReceiver(t)
  const completed = await createEndpoint(app, receiver.url('/completed'), ['IDENTIFICATION_COMPLETED'])
  const failed = await createEndpoint(app, receiver.url('/failed'), ['IDENTIFICATION_FAILED'])
  const id = await identify(app)
  await identifyFailing(app)
  await waitFor(() => receiver.received.length >= 2, 30_000, 'two deliveries') // beyond WEBHOOK_THUMBNAIL_WAIT_MS
  await sleep(300)
  t.equal(receiver.received.length, 2, 'each endpoint gets only its event type')
  const call = receiver.received.find(r => r.path === '/completed')!
  t.ok(verifies(completed.secret, call), 'standardwebhooks verifies it')
  t.notOk(verifies(failed.secret, call), 'not with another endpoint\'s secret')
  t.equal(call.webhookId, `msg_${id}`)
  t.match(call.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/)
  t.match(call.headers['content-type'], /^application\/json/)
  const body = JSON.parse(call.body)
  t.equal(body.type, 'identification.completed')
  t.match(body.timestamp, /^\d{4}-\d\d-\d\dT/)
  const shown = await gql(app, `{ identification(id: "${id}") { id answer callerId cached language backend model durationMs createdAt
    vehicles { category kind make model confidence evidence } image { sha256 mimeType bytes width height } usage { totalTokens } } }`, {}, identifier)
  t.match(body.data, shown.body.data.identification, 'data is the identification as GraphQL shows it')
  t.match(body.data.thumbnailUrl, /^https:\/\/vision\.example\.com\/thumbnails\/[0-9a-f-]+\.jpg\?expires=\d+&signature=[\w-]{43}$/)
  const thumbnail = await app.inject(body.data.thumbnailUrl.replace('https://vision.example.com', ''))
  t.equal(thumbnail.statusCode, 200, 'the signed thumbnail URL works')
  t.ok(call.body.length < 4000, 'no image bytes in the body')

  const failure = receiver.received.find(r => r.path === '/failed')!
  t.ok(verifies(failed.secret, failure))
  const failedBody = JSON.parse(failure.body)
  t.equal(failedBody.type, 'identification.failed')
  t.match(failedBody.data, { callerId: 'dashboard', code: 'BAD_USER_INPUT' })

  const log = await deliveries(app, completed.id)
  t.equal(log.edges.length, 1)
  t.match(log.edges[0].node, { webhookId: `msg_${id}`, event: 'IDENTIFICATION_COMPLETED', identificationId: id, state: 'SUCCEEDED', nextAttemptAt: null })
  t.match(log.edges[0].node.attempts, [{ attempt: 1, responseStatus: 204, error: null }])
  t.match((await endpoints(app)).find(e => e.id === completed.id), { lastSuccessAt: /T/, failingSince: null })
})

t.test('failed attempts are retried on the schedule with the same webhook-id; any 2xx succeeds', async t => {
  const app = await buildWebhookApp(t)
  const receiver = await startReceiver(t, (_request, index) => index < 2 ? { status: 500, body: 'try again' } : { status: 202 })
  const { id: endpointId, secret } = await createEndpoint(app, receiver.url())
  const id = await identify(app)
  await waitFor(() => receiver.received.length >= 3, 30_000, 'three attempts')
  await sleep(500)
  t.equal(receiver.received.length, 3, 'no attempt after the success')
  t.same(new Set(receiver.received.map(r => r.webhookId)), new Set([`msg_${id}`]), 'one webhook-id for every attempt')
  t.ok(receiver.received.every(r => verifies(secret, r)), 'every attempt verifies')
  const gaps = receiver.received.slice(1).map((r, i) => r.at - receiver.received[i]!.at)
  t.ok(gaps.every(gap => gap >= 170), `retries wait the schedule's 200 ms (±10 %): ${gaps.map(Math.round)}`)
  const [delivery] = (await deliveries(app, endpointId)).edges
  t.match(delivery.node, { state: 'SUCCEEDED' })
  t.match(delivery.node.attempts, [{ attempt: 1, responseStatus: 500, response: 'try again' }, { attempt: 2, responseStatus: 500 }, { attempt: 3, responseStatus: 202 }])
})

t.test('a delivery whose every attempt fails is given up after the last of the schedule', async t => {
  const app = await buildWebhookApp(t)
  const receiver = await startReceiver(t, () => ({ reset: true }))
  const { id: endpointId } = await createEndpoint(app, receiver.url())
  await identify(app)
  await waitFor(async () => (await deliveries(app, endpointId)).edges[0]?.node.state === 'FAILED', 30_000, 'given up')
  const [delivery] = (await deliveries(app, endpointId)).edges
  t.equal(delivery.node.attempts.length, 4, 'as many attempts as the schedule has')
  t.match(delivery.node.attempts[0], { responseStatus: null, error: /connection failed|ECONNRESET/ })
  t.equal(receiver.received.length, 4)
  const [endpoint] = await endpoints(app)
  t.match(endpoint, { enabled: true, failingSince: /T/ }, 'failing, not yet for five days')
})

for (const status of [429, 503]) {
  t.test(`Retry-After on ${status} is honoured`, async t => {
    const app = await buildWebhookApp(t)
    const receiver = await startReceiver(t, (_request, index) => index === 0 ? { status, headers: { 'retry-after': '2' } } : { status: 200 })
    await createEndpoint(app, receiver.url())
    await identify(app)
    await waitFor(() => receiver.received.length >= 2, 30_000, 'the retry')
    const gap = receiver.received[1]!.at - receiver.received[0]!.at
    t.ok(gap >= 1900, `waited Retry-After's 2 s rather than the schedule's 200 ms (${Math.round(gap)} ms)`)
  })
}

t.test('410 Gone disables the endpoint and says why; enabling it again resumes', async t => {
  const app = await buildWebhookApp(t)
  let gone = true
  const receiver = await startReceiver(t, () => gone ? { status: 410 } : { status: 200 })
  const { id: endpointId } = await createEndpoint(app, receiver.url())
  await identify(app)
  await waitFor(async () => (await endpoints(app))[0].enabled === false, 30_000, 'disabled')
  const [endpoint] = await endpoints(app)
  t.match(endpoint, { enabled: false, disabledAt: /T/, disabledReason: /410/ })
  t.equal(receiver.received.length, 1, 'not retried')
  t.equal((await deliveries(app, endpointId)).edges[0].node.state, 'FAILED')
  await identify(app)
  await sleep(400)
  t.equal(receiver.received.length, 1, 'nothing sent to a disabled endpoint')
  gone = false
  const enabled = await gql(app, `mutation { updateWebhookEndpoint(id: "${endpointId}", enabled: true) { enabled disabledReason } }`)
  t.same(enabled.body.data.updateWebhookEndpoint, { enabled: true, disabledReason: null })
  await identify(app)
  await waitFor(() => receiver.received.length === 2, 30_000, 'delivered again')
})

t.test('an endpoint whose every delivery failed for five days is disabled and says so', async t => {
  let offset = 0
  const app = await buildWebhookApp(t, { WEBHOOK_RETRY_SCHEDULE: '0,0.2,0.2,0.2,0.2,0.2' }, { now: () => Date.now() + offset })
  const receiver = await startReceiver(t, () => ({ status: 500 }))
  await createEndpoint(app, receiver.url())
  await identify(app)
  await waitFor(() => receiver.received.length >= 1, 30_000, 'the first attempt')
  await sleep(300)
  t.equal((await endpoints(app))[0].enabled, true, 'failing for a moment: still enabled')
  offset = 5 * 86_400_000 + 1000 // five days later, and still failing
  await waitFor(async () => (await endpoints(app))[0].enabled === false, 30_000, 'disabled')
  const [endpoint] = await endpoints(app)
  t.match(endpoint.disabledReason, /^Every delivery failed since .* \(at least 5 days\)\.$/)
  const count = receiver.received.length
  await sleep(600)
  t.equal(receiver.received.length, count, 'no more attempts')
})

t.test('an attempt times out; the response is kept up to 64 KB', async t => {
  const app = await buildWebhookApp(t, { WEBHOOK_TIMEOUT_MS: '300' })
  const big = 'x'.repeat(200 * 1024)
  const receiver = await startReceiver(t, (_request, index) => index === 0 ? { hang: true } : { status: 200, body: big })
  const { id: endpointId } = await createEndpoint(app, receiver.url())
  await identify(app)
  await waitFor(async () => (await deliveries(app, endpointId)).edges[0]?.node.state === 'SUCCEEDED', 30_000, 'success')
  const [first, second] = (await deliveries(app, endpointId)).edges[0].node.attempts
  t.match(first, { responseStatus: null, error: 'timeout after 300 ms' })
  t.ok(first.durationMs >= 290 && first.durationMs < 2000, `timed out at ${first.durationMs} ms`)
  t.equal(second.responseStatus, 200)
  t.equal(second.response.length, 64 * 1024, 'the response body kept to 64 KB')
})

t.test('rotation: both signatures for the overlap, then the new one alone', async t => {
  let offset = 0
  const app = await buildWebhookApp(t, {}, { now: () => Date.now() + offset })
  const receiver = await startReceiver(t)
  const { id: endpointId, secret: old } = await createEndpoint(app, receiver.url())
  const rotated = await gql(app, `mutation { rotateWebhookSecret(id: "${endpointId}") { secret endpoint { secretRotationEndsAt } } }`)
  const { secret: fresh, endpoint } = rotated.body.data.rotateWebhookSecret
  t.not(fresh, old)
  t.ok(Math.abs(Date.parse(endpoint.secretRotationEndsAt) - Date.now() - 86_400_000) < 10_000, 'the old secret signs for 24 h')
  await identify(app)
  await waitFor(() => receiver.received.length === 1)
  const during = receiver.received[0]!
  t.equal(during.headers['webhook-signature']!.split(' ').length, 2, 'two signatures, space separated')
  t.ok(verifies(old, during), 'the old secret verifies during the overlap')
  t.ok(verifies(fresh, during), 'the new one too')
  offset = 86_400_000 + 1000
  await identify(app)
  await waitFor(() => receiver.received.length === 2)
  const after = receiver.received[1]!
  t.equal(after.headers['webhook-signature']!.split(' ').length, 1)
  t.notOk(verifies(old, after), 'the old secret alone fails after the overlap')
  t.ok(verifies(fresh, after))
  t.equal((await endpoints(app))[0].secretRotationEndsAt, null)
})

t.test('deleting an endpoint stops its deliveries, pending retries included', async t => {
  const app = await buildWebhookApp(t, { WEBHOOK_RETRY_SCHEDULE: '0,0.3,0.3,0.3,0.3,0.3,0.3,0.3' })
  const receiver = await startReceiver(t, () => ({ status: 500 }))
  const { id: endpointId } = await createEndpoint(app, receiver.url())
  await identify(app)
  await identify(app)
  await waitFor(() => receiver.received.length >= 2, 30_000, 'first attempts')
  const deleted = await gql(app, `mutation { deleteWebhookEndpoint(id: "${endpointId}") }`)
  t.equal(deleted.body.data.deleteWebhookEndpoint, true)
  const deletedAt = performance.now()
  await identify(app)
  await sleep(1200)
  t.same(receiver.received.filter(r => r.at > deletedAt), [], 'nothing sent after the deletion')
  t.same(await endpoints(app), [])
  t.same((await deliveries(app, endpointId)).edges, [])
  t.equal((await gql(app, `mutation { deleteWebhookEndpoint(id: "${endpointId}") }`)).body.data.deleteWebhookEndpoint, false)
})

t.test('redeliver sends the event again with the same webhook-id; the log pages by cursor', async t => {
  const app = await buildWebhookApp(t)
  const receiver = await startReceiver(t)
  const { id: endpointId, secret } = await createEndpoint(app, receiver.url())
  const first = await identify(app)
  await identify(app)
  await waitFor(() => receiver.received.length === 2)
  const page1 = await deliveries(app, endpointId, 1)
  t.equal(page1.edges.length, 1)
  t.equal(page1.pageInfo.hasNextPage, true)
  const page2 = await deliveries(app, endpointId, 1, page1.pageInfo.endCursor)
  t.equal(page2.edges.length, 1)
  t.equal(page2.pageInfo.hasNextPage, false)
  t.equal(page2.edges[0].node.identificationId, first, 'newest first')
  const redelivered = await gql(app, `mutation { redeliverWebhook(deliveryId: "${page2.edges[0].node.id}") { id webhookId state } }`)
  t.match(redelivered.body.data.redeliverWebhook, { webhookId: `msg_${first}`, state: 'PENDING' })
  await waitFor(() => receiver.received.length === 3)
  t.equal(receiver.received[2]!.webhookId, `msg_${first}`, 'the same webhook-id: the receiver can tell it is the same event')
  t.ok(verifies(secret, receiver.received[2]!))
  t.equal((await deliveries(app, endpointId)).edges.length, 3)
  t.equal((await gql(app, 'mutation { redeliverWebhook(deliveryId: "999999") { id } }')).body.data.redeliverWebhook, null)
  t.equal((await gql(app, `{ webhookDeliveries(endpointId: "${endpointId}", after: "nope!") { edges { cursor } } }`)).body.errors?.[0]?.extensions.code,
    'BAD_USER_INPUT')
})

t.test('limits: endpoints, description, events', async t => {
  const app = await buildWebhookApp(t, { WEBHOOK_MAX_ENDPOINTS: '2' })
  const receiver = await startReceiver(t)
  t.ok((await createEndpoint(app, receiver.url('/a'))).id)
  t.ok((await createEndpoint(app, receiver.url('/b'))).id)
  const third = await createEndpoint(app, receiver.url('/c'))
  t.match(third.answer.body.errors?.[0], { extensions: { code: 'BAD_USER_INPUT', reason: 'too_many_endpoints' } })
  const [one] = await endpoints(app)
  await gql(app, `mutation { deleteWebhookEndpoint(id: "${one.id}") }`)
  t.match((await createEndpoint(app, receiver.url('/d'), ['IDENTIFICATION_COMPLETED'], 'x'.repeat(501))).answer.body.errors?.[0],
    { extensions: { code: 'BAD_USER_INPUT', argument: 'description' } })
  t.match((await createEndpoint(app, receiver.url('/d'), [])).answer.body.errors?.[0], { extensions: { code: 'BAD_USER_INPUT', argument: 'events' } })
  t.match((await createEndpoint(app, `${receiver.url('/')}${'a'.repeat(2100)}`)).answer.body.errors?.[0],
    { extensions: { code: 'WEBHOOK_URL_REFUSED', reason: 'too_long' } })
})

t.test('the outbox is written with the record: deliveries wait for a worker that was not running', async t => {
  const { tempDataDir } = await import('./helper.ts')
  const dataDir = tempDataDir()
  const receiver = await startReceiver(t)
  // An instance that records but whose worker never delivers (an attempt per hour, first one in an hour).
  const first = await buildWebhookApp(t, { DATA_DIR: dataDir, WEBHOOK_POLL_MS: '60000' })
  const { secret } = await createEndpoint(first, receiver.url())
  internalsOf(first.webhooks!).worker.stop() // as if it died before delivering
  const ids = [await identify(first), await identify(first), await identify(first)]
  await first.history!.flushed()
  const pending = await internalsOf(first.webhooks!).store.countPending()
  t.equal(pending, 3, 'three deliveries in the outbox, written with their records')
  // The same record written again (a batch retried after a lost reply) adds none; a new one adds its own.
  const record = {
    id: ids[0]!,
    callerId: 'dashboard',
    callerKind: 'apikey',
    createdAt: new Date(),
    outcome: 'OK',
    cached: false,
    language: 'ru',
    detail: 'auto',
    backend: 'SIMULATED' as const,
    model: 'simulated',
    backendName: null,
    answer: 'a tractor',
    vehicles: [],
    image: null,
    promptTokens: 0,
    completionTokens: 0,
    durationMs: 1,
    cacheKey: null
  }
  await historyInternals(first.history!).store.insertMany([record, { ...record, id: '00000000-0000-4000-8000-000000000001' }])
  t.equal(await internalsOf(first.webhooks!).store.countPending(), 4, 'a retried batch adds deliveries for its new records only')
  await first.close()
  t.equal(receiver.received.length, 0)

  const second = await buildWebhookApp(t, { DATA_DIR: dataDir })
  await waitFor(() => receiver.received.length === 4, 30_000, 'delivered by the next instance')
  t.same(new Set(receiver.received.map(r => r.webhookId)), new Set([...ids, '00000000-0000-4000-8000-000000000001'].map(id => `msg_${id}`)))
  t.ok(receiver.received.every(r => verifies(secret, r)))
  void second
})

t.test('attempts in flight are bounded per endpoint; metrics count them', async t => {
  const app = await buildWebhookApp(t, { WEBHOOK_CONCURRENCY_PER_ENDPOINT: '2', WEBHOOK_CONCURRENCY: '3' })
  let open = 0
  let most = 0
  const handler = async (): Promise<{ status: number }> => {
    open++
    most = Math.max(most, open)
    await sleep(150)
    open--
    return { status: 200 }
  }
  const one = await startReceiver(t, handler)
  const two = await startReceiver(t, handler)
  await createEndpoint(app, one.url())
  await createEndpoint(app, two.url())
  for (let i = 0; i < 6; i++) await identify(app)
  await waitFor(() => one.received.length === 6 && two.received.length === 6, 15_000, 'all delivered')
  t.ok(most <= 3, `at most 3 in flight in all (${most})`)
  const perEndpoint = (received: typeof one.received): number => {
    let peak = 0
    for (const r of received) peak = Math.max(peak, received.filter(o => o.at <= r.at && o.at + 140 > r.at).length)
    return peak
  }
  t.ok(perEndpoint(one.received) <= 2 && perEndpoint(two.received) <= 2, 'at most 2 in flight to one endpoint')
  await sleep(5200) // the pending count is refreshed every 5 s
  const metrics = (await app.inject('/metrics')).payload
  t.match(metrics, /agrivision_webhook_attempts_total\{outcome="succeeded"\} 12/)
  t.match(metrics, /agrivision_webhook_deliveries_pending 0/)
  t.match(metrics, /agrivision_webhook_endpoints_disabled 0/)
  t.notOk(metrics.includes('whsec_'))
})

t.test('finished deliveries are purged with history\'s retention', async t => {
  const app = await buildWebhookApp(t)
  const receiver = await startReceiver(t)
  const { id: endpointId } = await createEndpoint(app, receiver.url())
  await identify(app)
  await waitFor(() => receiver.received.length === 1)
  await waitFor(async () => (await deliveries(app, endpointId)).edges[0]?.node.state === 'SUCCEEDED')
  const store = internalsOf(app.webhooks!).store
  t.equal(await store.purgeDeliveries(Date.now() - 86_400_000, 100), 0, 'a recent one stays')
  t.equal(await store.purgeDeliveries(Date.now() + 1000, 100), 1)
  t.same((await deliveries(app, endpointId)).edges, [])
})

t.test('SQLite: endpoint changes and an attempt\'s result wait for another connection\'s write, never "database is locked"', async t => {
  // They run on the request thread's connection while the history writer thread writes records and outbox rows on
  // its own. Each transaction writes first, so SQLite waits its busy timeout for the other writer: a transaction that
  // read first could not upgrade its snapshot and failed at once. The other writer holds its lock on another thread.
  const file = join(tempDataDir(), 'history.db')
  const opened = openDatabase<WebhookTables>({ dialect: 'sqlite', file })
  t.teardown(() => opened.close())
  await migrateToLatest(opened.db)
  const store = new WebhookStore(opened.db, false)
  const other = async (sql: string, params: Array<string | number> = []) => await holdWrite(file, sql, params, 150)
  const touchMigrations = 'update kysely_migration set timestamp = timestamp'

  let held = await other(touchMigrations)
  const endpoint = await store.createEndpoint('https://receiver.example/hook', ['identification.completed'], null, 'whsec_x', 10)
  await held.committed
  t.ok(endpoint, 'created')
  const id = endpoint!.id
  const now = Date.now()
  const due = { state: 'pending', attempts: 0, next_attempt_at: now, lease_until: null, leased_by: null, completed_at: null }
  const event = { message_id: 'msg_1', event_type: 'identification.completed', identification_id: 'i1', created_at: now }
  await opened.db.insertInto('webhook_deliveries').values({ endpoint_id: id, ...event, ...due }).execute()

  held = await other('update webhook_endpoints set updated_at = updated_at + 1 where id = ?', [id])
  const [claimed] = await store.claim('owner-1', 10, 60_000, [])
  await held.committed
  t.equal(claimed?.messageId, 'msg_1', 'claimed')

  held = await other('update webhook_endpoints set updated_at = updated_at + 1 where id = ?', [id])
  const completed = await store.complete(claimed!, 'owner-1', {
    attempt: { startedAt: new Date(now), durationMs: 5, status: 500, error: null, response: 'down' }, result: 'retry', retryAt: now + 1000
  }, 5 * 86_400_000)
  await held.committed
  t.strictSame(completed, { recorded: true, disabled: null }, 'the attempt recorded')
  const delivery = await opened.db.selectFrom('webhook_deliveries').selectAll().where('message_id', '=', 'msg_1').executeTakeFirstOrThrow()
  t.match(delivery, { attempts: 1, next_attempt_at: now + 1000, leased_by: null })
  t.equal((await store.getEndpoint(id))?.failingSince?.getTime(), now, 'the failure streak started')

  held = await other(touchMigrations)
  const updated = await store.updateEndpoint(id, { description: 'changed', events: ['identification.failed'] })
  await held.committed
  t.match(updated, { description: 'changed', events: ['identification.failed'] })

  held = await other('update webhook_deliveries set next_attempt_at = next_attempt_at where endpoint_id = ?', [id])
  const deleted = await store.deleteEndpoint(id)
  await held.committed
  t.equal(deleted, true, 'deleted')
  t.strictSame(await store.listEndpoints(), [])
})
