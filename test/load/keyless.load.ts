// Keyless soak (issue 22): two real server processes with no secret anywhere, PostgreSQL and Redis reached with the
// managed identity's token (DATABASE_AUTH=entra, REDIS_AUTH=entra), both over TLS, short tokens so that every scope
// refreshes several times. PostgreSQL speaks TLS only and the fake identity endpoint sets the role's password to each
// token it mints (an enforcer ends any session whose login token has expired); Redis checks ACL passwords set the
// same way behind a TLS proxy that closes any connection whose token has expired (test/support/entra-redis.ts).
// KEYLESS_SOAK_S (default 150; the run: KEYLESS_SOAK_S=600 npx tap --timeout 900 test/load/keyless.load.ts),
// KEYLESS_TOKEN_S (default 90), KEYLESS_RATE (identifications per second per instance, default 2).
import t from 'tap'
import type { Client } from 'pg'
import { FakeAzure, type MintedToken } from '../support/fake-azure.ts'
import { startPostgres, asAdmin, setRolePassword, ident } from '../support/postgres.ts'
import { startEntraRedis } from '../support/entra-redis.ts'
import { spawnServer, stopServer, type ServerProcess } from '../support/server-process.ts'
import { subscribe, within, type Subscriber } from '../support/subscriber.ts'
import { identifyBody } from '../support/multipart.ts'
import * as images from '../support/images.ts'
import { newApiKey } from '../../src/callers/api-keys.ts'
import { DEPLOYMENT } from './support.ts'
import { loginValidityMs } from '../../src/database/entra-pool.ts'
import { refreshMargin } from '../../src/azure/margins.ts'

const SOAK_MS = Number(process.env.KEYLESS_SOAK_S ?? 150) * 1000
const TOKEN_S = Number(process.env.KEYLESS_TOKEN_S ?? 90)
const RATE = Number(process.env.KEYLESS_RATE ?? 2)
const ROLE = 'agrivision-app'
const OID = '6f1e0c1e-0000-4000-8000-0000000000b2'
const DATABASE_AUDIENCE = 'https://ossrdbms-aad.database.windows.net'
const farmer = newApiKey('farmer')
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

t.test(`two instances, ${SOAK_MS / 1000} s, ${TOKEN_S} s tokens: no secret anywhere, nothing lost`, { timeout: SOAK_MS + 180_000 }, async t => {
  const postgres = await startPostgres(t, { tls: true })
  const pgTls = postgres.tls!
  await asAdmin(postgres.url, async admin => {
    await admin.query(`CREATE ROLE ${ident(ROLE)} LOGIN`)
    await admin.query(`CREATE DATABASE keyless OWNER ${ident(ROLE)}`)
  })
  const redis = await startEntraRedis(t)
  const { Client: PgClient } = await import('pg')
  const admin: Client = new PgClient({ connectionString: postgres.url })
  await admin.connect()
  t.teardown(() => admin.end())

  const fake = await new FakeAzure({ tokenShape: 'jwt', tokenLifetimeSec: TOKEN_S, identities: { system: { oid: OID, name: ROLE } } }).start()
  t.teardown(() => fake.close())
  const rotations: Array<{ at: number, expiresOnMs: number }> = []
  fake.onMint = async (minted: MintedToken) => {
    if (minted.resource === DATABASE_AUDIENCE) {
      await setRolePassword(admin, minted.identity.name, minted.token, minted.expiresOnMs)
      rotations.push({ at: Date.now(), expiresOnMs: minted.expiresOnMs })
    } else if (minted.resource.startsWith('https://redis')) {
      await redis.addToken(minted.identity.oid, minted.token, minted.expiresOnMs)
    }
  }
  // Ends every session of the role whose login token has expired (whether Azure does is not documented: the worst case).
  let sessionsKilled = 0
  const enforcer = setInterval(() => {
    void (async () => {
      const { rows } = await admin.query<{ pid: number, started: Date }>('SELECT pid, backend_start AS started FROM pg_stat_activity WHERE usename = $1', [ROLE])
      for (const { pid, started } of rows) {
        const login = rotations.filter(r => r.at <= started.getTime() + 1_000).at(-1)
        if (login !== undefined && login.expiresOnMs <= Date.now()) {
          sessionsKilled++
          await admin.query('SELECT pg_terminate_backend($1)', [pid])
        }
      }
    })().catch(() => {})
  }, 500)
  t.teardown(() => { clearInterval(enforcer) })

  const env = {
    ...fake.identityEnv(),
    AZURE_OPENAI_ENDPOINT: fake.origin,
    AZURE_OPENAI_DEPLOYMENT: DEPLOYMENT,
    AUTH_MODE: 'apikey',
    API_KEY_HASHES: farmer.entry,
    RATE_LIMIT_PER_MINUTE: '100000',
    VISION_MAX_CONCURRENCY_PER_CALLER: '1024',
    RESULT_CACHE_TTL_S: '0',
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
    DATABASE_URL: pgTls.tcpUrl(ROLE, { host: 'localhost', database: 'keyless' }),
    DATABASE_AUTH: 'entra',
    DATABASE_CA_FILE: pgTls.caFile,
    REDIS_URL: redis.url,
    REDIS_AUTH: 'entra',
    REDIS_CA_FILE: redis.ca.caFile
  }
  const lifetime = { maxLifetimeMs: SOAK_MS + 170_000 }
  const servers = await Promise.all([spawnServer(env, lifetime), spawnServer(env, lifetime)])
  t.teardown(() => Promise.all(servers.map(stopServer)))
  await Promise.all(servers.map(ready))
  const [a, b] = servers as [ServerProcess, ServerProcess]

  const subscribers: Subscriber[] = servers.map(server => subscribe(`ws://127.0.0.1:${server.port}/graphql`, { connectionParams: { 'x-api-key': farmer.key } }))
  t.teardown(() => Promise.all(subscribers.map(async subscriber => { await subscriber.dispose() })))
  await Promise.all(subscribers.map(async subscriber => await within(subscriber.connected, 10_000, 'connection_ack')))
  await sleep(1000) // the subscriptions reach Redis

  const photo = await images.jpeg(16, 16)
  const made: string[] = []
  const failures: string[] = []
  const started = Date.now()
  await Promise.all(servers.map(async server => {
    let sent = 0
    while (Date.now() - started < SOAK_MS) {
      const due = started + (sent++ * 1000) / RATE
      if (due > Date.now()) await sleep(due - Date.now())
      try {
        made.push(await identify(server, photo))
      } catch (err) {
        failures.push((err as Error).message.slice(0, 300))
      }
    }
  }))
  const runMs = Date.now() - started
  const settled = Date.now() + 15_000
  while (subscribers.some(subscriber => subscriber.received.length < made.length) && Date.now() < settled) await sleep(200)

  t.same(failures, [], `no failed identification (${made.length} made)`)
  const madeSet = new Set(made)
  subscribers.forEach((subscriber, i) => {
    const received = subscriber.received.map(({ payload }) => payload.data?.identificationCompleted?.id as string)
    const missing = made.filter(id => !received.includes(id))
    t.same(missing, [], `instance ${i === 0 ? 'A' : 'B'}'s subscriber got every identification, from both instances (${received.length})`)
    t.equal(received.filter(id => madeSet.has(id)).length, received.length, 'and nothing else')
  })
  const keylessUrl = new URL(postgres.url)
  keylessUrl.pathname = '/keyless'
  const counted = await waitForRecords(keylessUrl.toString(), made.length)
  t.equal(counted, made.length, 'every record written to PostgreSQL')
  t.equal(sessionsKilled, 0, 'no PostgreSQL session outlived its login token')
  t.equal(redis.closedForExpiry, 0, 'no Redis connection was closed for an expired token')

  // Fetches per scope per instance ≈ 1 + run ÷ refresh interval (± 2, the bound). The interval is the token's
  // lifetime less the life each scope asks of it: a PostgreSQL login wants loginValidityMs left (entra-pool.ts); a
  // Redis connection re-AUTHs refreshMargin + jitter (≤ lifetime / 20) before expiry and then takes a fresh token.
  const lifetimeMs = TOKEN_S * 1000
  const intervals = {
    'https://ossrdbms-aad.database.windows.net/.default': lifetimeMs - loginValidityMs(lifetimeMs),
    'https://redis.azure.com/.default': lifetimeMs - refreshMargin(lifetimeMs) - lifetimeMs / 40
  }
  for (const server of [a, b]) {
    const metrics = await (await fetch(`${server.origin}/metrics`)).text()
    for (const [scope, intervalMs] of Object.entries(intervals)) {
      const pattern = new RegExp(`^agrivision_token_fetches_by_scope_total\\{scope="${scope.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"\\} (\\d+)`, 'm')
      const fetches = Number(pattern.exec(metrics)?.[1] ?? NaN)
      const expected = 1 + runMs / intervalMs
      t.ok(Math.abs(fetches - expected) <= 2,
        `${scope}: ${fetches} fetches in ${Math.round(runMs / 1000)} s on :${server.port} (≈ ${expected.toFixed(1)}: one per ${Math.round(intervalMs / 1000)} s)`)
    }
  }
  const minted = fake.minted.map(({ token }) => token)
  const outputs = servers.map(server => server.output())
  const leaked = minted.filter(token => outputs.some(output => output.includes(token) || output.includes(token.split('.')[2]!)))
  t.equal(leaked.length, 0, `none of the ${minted.length} tokens in either server's output`)
})

async function ready (server: ServerProcess): Promise<void> {
  const deadline = Date.now() + 90_000
  for (;;) {
    try {
      if ((await fetch(`${server.origin}/health/ready`)).status === 200) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`not ready; output:\n${server.output().slice(-3000)}`)
    await sleep(100)
  }
}

async function identify (server: ServerProcess, photo: Buffer): Promise<string> {
  const body = await identifyBody(photo)
  const res = await fetch(`${server.origin}/graphql`, {
    method: 'POST', headers: { ...body.headers, 'x-api-key': farmer.key }, body: new Uint8Array(body.payload), signal: AbortSignal.timeout(30_000)
  })
  const json = await res.json() as any
  const id = json.data?.identifyVehicle?.id
  if (typeof id !== 'string') throw new Error(`${res.status} ${JSON.stringify(json.errors?.[0]?.extensions ?? json)}`)
  return id
}

/** The identifications recorded in the keyless database, once `expected` are there or 20 s have passed. */
async function waitForRecords (url: string, expected: number): Promise<number> {
  const deadline = Date.now() + 20_000
  return await asAdmin(url, async client => {
    for (;;) {
      const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM identifications')
      const n = Number(rows[0]!.n)
      if (n >= expected || Date.now() > deadline) return n
      await sleep(500)
    }
  })
}
