// Webhooks under faults (issue 10's number): 2,000 identifications delivered to a receiver that fails 20 % of
// attempts (500s, timeouts, resets), the service killed with SIGKILL and restarted twice during the run, one of
// two endpoints deleted half-way. Every event in history is delivered to the endpoint kept; every duplicate
// carries the same webhook-id; nothing reaches the deleted endpoint after its deletion returned. SQLite in a
// DATA_DIR kept across the restarts; the simulated vision backend; a compressed retry schedule and 500 ms attempts.
import t from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { join } from 'node:path'
import { tempDataDir } from '../helper.ts'
import { newApiKey } from '../../src/callers/api-keys.ts'
import { identifyBody } from '../support/multipart.ts'
import { jpeg } from '../support/images.ts'
import { spawnServer, type ServerProcess } from '../support/server-process.ts'
import { startReceiver, verifies } from '../support/webhook-receiver.ts'
import { get, identify, logLines, runPool, seededRandom, sleep, stopServer, waitFor } from './support.ts'

const TOTAL = Number(process.env.LOAD_WEBHOOK_IDENTIFICATIONS ?? 2000)
const CONCURRENCY = 8
const ADMIN = newApiKey('admin')
const IN_FLIGHT_GRACE_MS = 500

t.test('2,000 identifications, 20 % failed attempts, SIGKILL twice: every event delivered, one webhook-id each', { timeout: 180_000 }, async t => {
  const dataDir = tempDataDir()
  const env = {
    DATA_DIR: dataDir,
    AUTH_MODE: 'apikey',
    API_KEY_HASHES: `${ADMIN.entry}:VehicleIdentification.Identify+VehicleIdentification.Admin`,
    LOG_LEVEL: 'error',
    THUMBNAIL_SKIP_ABOVE_UTILISATION: '1',
    WEBHOOK_ALLOW_LOOPBACK: 'true',
    // Ten attempts (the spec's count), seconds apart instead of hours.
    WEBHOOK_RETRY_SCHEDULE: '0,0.2,0.5,1,1,2,2,2,2,2',
    // A hung attempt gives up after 500 ms; an attempt leased by a killed instance is taken up again 6 s later.
    WEBHOOK_TIMEOUT_MS: '500',
    WEBHOOK_POLL_MS: '100',
    WEBHOOK_CONCURRENCY: '64',
    WEBHOOK_CONCURRENCY_PER_ENDPOINT: '32'
  }

  const random = seededRandom(10)
  const succeeded = new Map<string, number>() // webhook-id → 2xx answers
  const idsByEvent = new Map<string, Set<string>>() // the body's data.id → webhook-ids seen
  let unverified = 0
  let deletedAt = Infinity
  let inFlightAtDeletion = 0
  const afterDeletion: string[] = []
  const faults = { 500: 0, timeout: 0, reset: 0 }
  let secretKept = ''
  let secretDeleted = ''
  const receiver = await startReceiver(t, request => {
    const kept = request.path === '/kept'
    if (!verifies(kept ? secretKept : secretDeleted, request)) unverified++
    // An attempt sent just before the deletion may be read here a moment after its answer (this process is busy too).
    if (!kept && request.at > deletedAt + IN_FLIGHT_GRACE_MS) afterDeletion.push(request.webhookId)
    else if (!kept && request.at > deletedAt) inFlightAtDeletion++
    try {
      const dataId = JSON.parse(request.body).data.id as string
      const seen = idsByEvent.get(dataId) ?? new Set()
      seen.add(request.webhookId)
      idsByEvent.set(dataId, seen)
    } catch {}
    const roll = random()
    if (roll < 0.0667) { faults['500']++; return { status: 500, body: 'boom' } }
    if (roll < 0.1333) { faults.timeout++; return { hang: true } }
    if (roll < 0.2) { faults.reset++; return { reset: true } }
    if (kept) succeeded.set(request.webhookId, (succeeded.get(request.webhookId) ?? 0) + 1)
    return { status: 200 }
  })

  let server: ServerProcess = await start(env)
  t.teardown(() => stopServer(server))
  const graphql = async (query: string): Promise<any> => {
    const res = await fetch(`${server.origin}/graphql`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': ADMIN.key }, body: JSON.stringify({ query })
    })
    return await res.json()
  }
  const create = async (path: string): Promise<{ id: string, secret: string }> => {
    const answer = await graphql(`mutation { createWebhookEndpoint(url: "${receiver.url(path)}",
      events: [IDENTIFICATION_COMPLETED]) { secret endpoint { id } } }`)
    return { id: answer.data.createWebhookEndpoint.endpoint.id, secret: answer.data.createWebhookEndpoint.secret }
  }
  const kept = await create('/kept')
  const doomed = await create('/deleted')
  secretKept = kept.secret
  secretDeleted = doomed.secret

  const photo = await jpeg(64, 48)
  const encoded = await identifyBody(photo)
  const body = { payload: encoded.payload, headers: { ...encoded.headers, 'x-api-key': ADMIN.key } }

  const started = performance.now()
  let acknowledged = 0
  const answeredIds: string[] = []
  let refused = 0
  let restarting: Promise<void> | null = null
  const kills: number[] = []
  const errors: string[] = []
  const restart = async (): Promise<void> => {
    errors.push(...logLines(server.output()))
    server.child.kill('SIGKILL')
    await server.exited
    kills.push(performance.now() - started)
    server = await start(env)
  }
  await runPool(TOTAL, CONCURRENCY, async index => {
    const killNow = index === Math.floor(TOTAL / 3) || index === Math.floor((2 * TOTAL) / 3)
    if (killNow) restarting ??= restart().finally(() => { restarting = null })
    if (index === Math.floor(TOTAL / 2)) {
      await restarting
      const answer = await graphql(`mutation { deleteWebhookEndpoint(id: "${doomed.id}") }`)
      if (answer.data?.deleteWebhookEndpoint !== true) throw new Error(`delete failed: ${JSON.stringify(answer)}`)
      deletedAt = performance.now()
    }
    await restarting
    const outcome = await identify(server.origin, body, { agent: false, timeoutMs: 10_000 })
    if (outcome.code === 'OK') {
      acknowledged++
      answeredIds.push((outcome.body as { data: { identifyVehicle: { id: string } } }).data.identifyVehicle.id)
    } else refused++
  })
  const submittedMs = performance.now() - started

  // Every identification history holds must reach the kept endpoint.
  const db = new DatabaseSync(join(dataDir, 'history.db'), { readOnly: true })
  t.teardown(() => db.close())
  const count = (sql: string): number => Number((db.prepare(sql).get() as { n: number }).n)
  const allDelivered = await waitFor(() =>
    count(`select count(*) as n from webhook_deliveries where endpoint_id = '${kept.id}' and state = 'succeeded'`) ===
      count("select count(*) as n from identifications where outcome = 'OK'"), 60_000, 200)
  const deliveredMs = performance.now() - started
  await sleep(1000)

  errors.push(...logLines(server.output()))
  t.comment(JSON.stringify([...new Set(errors.map(line => { try { return JSON.parse(line).msg } catch { return line.slice(0, 200) } }))]))
  const recorded = (db.prepare("select id from identifications where outcome = 'OK'").all() as Array<{ id: string }>).map(row => row.id)
  const missing = recorded.filter(id => (succeeded.get(`msg_${id}`) ?? 0) === 0)
  const duplicates = [...succeeded.values()].filter(n => n > 1).length
  const mixedIds = [...idsByEvent].filter(([id, seen]) => seen.size !== 1 || !seen.has(`msg_${id}`))
  const failedForGood = count("select count(*) as n from webhook_deliveries where state = 'failed'")
  const stats = {
    identifications: TOTAL,
    acknowledged,
    refusedOrCutByKill: refused,
    recordedInHistory: recorded.length,
    acknowledgedButNotRecorded: Math.max(0, acknowledged - recorded.length),
    requestsReceived: receiver.received.length,
    faults,
    deliveredToKept: recorded.length - missing.length,
    eventsDeliveredMoreThanOnce: duplicates,
    // Attempts the service recorded as timed out, against the hangs the receiver made: the rest were answers this
    // busy process sent too late (a 200 the service never saw: delivered again, with the same webhook-id).
    timeoutsRecorded: count("select count(*) as n from webhook_attempts where error like 'timeout%'"),
    deletedEndpointRequestsReadWithinGrace: inFlightAtDeletion,
    kills: kills.map(ms => `${(ms / 1000).toFixed(1)} s`),
    submittedInSeconds: +(submittedMs / 1000).toFixed(1),
    allDeliveredInSeconds: +(deliveredMs / 1000).toFixed(1)
  }
  t.comment(JSON.stringify(stats))
  t.ok(allDelivered, 'every delivery to the kept endpoint succeeded')
  t.same(missing, [], 'every event in history delivered')
  // While an endpoint receives events, an answer waits for its record and outbox rows: what a caller was told, a
  // SIGKILL right after cannot take back.
  t.same(answeredIds.filter(id => !recorded.includes(id)), [], 'every answered identification was recorded before its answer')
  t.same(answeredIds.filter(id => (succeeded.get(`msg_${id}`) ?? 0) === 0), [], 'every answered identification delivered')
  t.same(mixedIds, [], 'every request for an event carries its one webhook-id (duplicates included)')
  t.same(afterDeletion, [], 'nothing delivered to the deleted endpoint after its deletion returned')
  t.equal(unverified, 0, 'every request verifies with standardwebhooks')
  t.equal(failedForGood, 0, 'no delivery given up')
  t.equal(kills.length, 2)
  t.ok(recorded.length >= TOTAL * 0.95, `most identifications recorded (${recorded.length})`)
  t.ok(faults['500'] > 0 && faults.timeout > 0 && faults.reset > 0, 'every kind of fault happened')
})

async function start (env: Record<string, string>): Promise<ServerProcess> {
  const server = await spawnServer(env, { maxLifetimeMs: 200_000 })
  let exited = false
  void server.exited.then(() => { exited = true })
  const ready = await waitFor(async () => exited || (await get(server.origin, '/health/ready', 1000)).status === 200, 20_000, 50)
  if (!ready || exited) throw new Error(`server not ready: ${server.output().slice(-2000)}`)
  return server
}
