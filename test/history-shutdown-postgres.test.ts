// Graceful restarts under load, on PostgreSQL: the real server process answers many concurrent
// identifications, gets SIGTERM the moment one of them is answered (others in flight and queued), and is
// started again on the same database. Every identification whose answer reached its client must be in history
// afterwards, with and without a webhook endpoint (answers then wait for their records). SHUTDOWN_ROUNDS=30 to
// loop it longer; SHUTDOWN_CPU_BURNERS busy processes stand for a loaded machine (issue 17, item 6).
import t from 'tap'
import http from 'node:http'
import { spawn } from 'node:child_process'
import pg from 'pg'
import { FakeAzure } from './support/fake-azure.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'
import { startPostgres } from './support/postgres.ts'
import { spawnServer, stopServer, type ServerProcess } from './support/server-process.ts'
import { startReceiver } from './support/webhook-receiver.ts'
import { newApiKey } from '../src/callers/api-keys.ts'

const ROUNDS = Number(process.env.SHUTDOWN_ROUNDS ?? 4)
const CLIENTS = 24
const DEPLOYMENT = 'gpt-4o-vision'
const ADMIN = newApiKey('admin')
const ADMIN_HEADER = { 'x-api-key': ADMIN.key }

const pgSql = await startPostgres(t)
const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
// Answers take 0–maxLatency ms: some identifications finish right before the signal, some right after it.
let maxLatencyMs = 150
fake.chatFault = () => ({ kind: 'ok', latencyMs: Math.floor(Math.random() * maxLatencyMs) })
const body = await identifyBody(await images.jpeg(160, 120))

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

async function ready (server: ServerProcess, timeoutMs = 60_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && server.child.exitCode === null) {
    const status = await fetch(`${server.origin}/health/ready`).then(res => res.status, () => 0)
    if (status === 200) return true
    await sleep(50)
  }
  return false
}

/** One identification; its id when the answer (with data) reached us, else null. */
async function identify (origin: string, agent: http.Agent): Promise<string | null> {
  return await new Promise(resolve => {
    const req = http.request(`${origin}/graphql`, {
      method: 'POST', agent, headers: { ...body.headers, ...ADMIN_HEADER, 'content-length': String(body.payload.length) }
    }, res => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', () => resolve(null))
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))?.data?.identifyVehicle?.id ?? null)
        } catch { resolve(null) }
      })
    })
    req.on('error', () => resolve(null))
    req.setTimeout(30_000, () => req.destroy())
    req.end(body.payload)
  })
}

/** Busy child processes standing for a loaded machine (the report's was a busy 2-core one). */
function burnCpu (count: number): () => void {
  const children = Array.from({ length: count }, () => spawn('nice', ['-n', '10', process.execPath, '-e', 'for(;;){}'], { stdio: 'ignore' }))
  const stop = (): void => { for (const child of children) child.kill('SIGKILL') }
  process.once('exit', stop)
  return stop
}

t.test('SIGTERM under load: every answered identification is in history after the restart', { timeout: 60_000 + ROUNDS * 30_000 }, async t => {
  const db = new pg.Client({ connectionString: pgSql.url })
  await db.connect()
  t.teardown(() => db.end())
  const stopBurning = burnCpu(Number(process.env.SHUTDOWN_CPU_BURNERS ?? 1))
  t.teardown(stopBurning)
  const receiver = await startReceiver(t)

  let answeredTotal = 0
  let lost = 0
  for (let round = 0; round < ROUNDS; round++) {
    // Short answers in even rounds, long ones (many in flight and queued at the signal) in odd rounds.
    maxLatencyMs = round % 2 === 0 ? 150 : 1500
    const server = await spawnServer({
      ...fake.identityEnv(),
      AZURE_OPENAI_ENDPOINT: fake.origin,
      AZURE_OPENAI_DEPLOYMENT: DEPLOYMENT,
      DATABASE_URL: pgSql.url,
      AUTH_MODE: 'apikey',
      API_KEY_HASHES: `${ADMIN.entry}:VehicleIdentification.Identify+VehicleIdentification.Admin`,
      WEBHOOK_ALLOW_LOOPBACK: 'true',
      LOG_LEVEL: 'info',
      SHUTDOWN_GRACE_MS: '20000',
      VISION_MAX_CONCURRENCY: '16',
      VISION_QUEUE_SIZE: '64'
    })
    t.teardown(() => stopServer(server))
    if (!await ready(server)) {
      t.fail(`round ${round}: the server is not ready`, { output: server.output().slice(-3000) })
      return
    }

    const durable = round >= Math.floor(ROUNDS / 2)
    if (durable && round === Math.floor(ROUNDS / 2)) {
      // From here on a webhook endpoint exists (it stays in the database): answers wait for their records.
      const created = await fetch(`${server.origin}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...ADMIN_HEADER },
        body: JSON.stringify({ query: `mutation { createWebhookEndpoint(url: "${receiver.url()}", events: [IDENTIFICATION_COMPLETED]) { secret } }` })
      }).then(async res => await res.json() as any)
      t.ok(created.data?.createWebhookEndpoint?.secret, 'a webhook endpoint from now on')
      await sleep(6000) // every instance sees a new endpoint within 5 s
    }
    const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS })
    const answered: string[] = []
    let signalled = false
    const signal = (): void => {
      if (signalled) return
      signalled = true
      server.child.kill('SIGTERM')
    }
    // The signal comes the moment the n-th answer arrives (the report: the one answered just before it was lost).
    const signalAfter = 10 + Math.floor(Math.random() * 50)
    const clients = Array.from({ length: CLIENTS }, async () => {
      // Each client sends again as soon as it has its answer, until the server stops answering.
      for (;;) {
        const id = await identify(server.origin, agent)
        if (id === null) { if (signalled) return; continue }
        answered.push(id)
        if (answered.length === signalAfter) signal()
      }
    })
    await Promise.all(clients)
    const exit = await server.exited
    agent.destroy()
    t.equal(exit.code, 0, `round ${round}: exit 0`)
    t.notMatch(server.output(), /records not written|killed by timeout|second (error|SIGTERM)/, `round ${round}: a clean shutdown`)

    const stored = await db.query<{ id: string }>('select id from identifications where id = any($1)', [answered])
    const found = new Set(stored.rows.map(row => row.id))
    const missing = answered.filter(id => !found.has(id))
    answeredTotal += answered.length
    lost += missing.length
    t.same(missing, [], `round ${round}${durable ? ' (webhook endpoint)' : ''}: all ${answered.length} answered identifications are in history`)
    if (missing.length > 0) t.comment(server.output().slice(-4000))
  }
  t.comment(`${ROUNDS} restarts, ${answeredTotal} answered identifications, ${lost} missing from history`)
})
