// Keyless soak (issue 22): two real server processes with no secret anywhere, PostgreSQL and Redis reached with the
// managed identity's token (DATABASE_AUTH=entra, REDIS_AUTH=entra), both over TLS, short tokens so that every scope
// refreshes several times. The two instances are two apps with two user-assigned identities (AZURE_CLIENT_ID), sharing
// one database and one Redis, set up as README's "Keyless on Azure" says for two identities: a role per identity,
// both members of an owner role that creates and owns the tables, whichever instance migrates first.
// PostgreSQL speaks TLS only and the fake identity endpoint sets each identity's role password to each token it mints
// for it (an enforcer ends any session whose login token has expired); Redis checks ACL passwords set the same way,
// an ACL user per identity's object id, behind a TLS proxy that closes any connection whose token has expired
// (test/support/entra-redis.ts).
// Why not one identity for both: a PostgreSQL role holds one password, so the stand-in could accept only the token
// minted last and each instance's fetch would refuse the other's still-valid token (28P01, a forced fetch), where
// Azure accepts any valid token of the principal: fetch counts double for an artifact of the test.
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
/** The two apps' user-assigned identities, by client id: a role each (named as the identity), an ACL user each (oid). */
const APPS = [
  { clientId: 'c1a5e0a1-0000-4000-8000-00000000c11a', oid: '6f1e0c1e-0000-4000-8000-0000000000b2', name: 'agrivision-app-a' },
  { clientId: 'c1a5e0a1-0000-4000-8000-00000000c11b', oid: '6f1e0c1e-0000-4000-8000-0000000000b3', name: 'agrivision-app-b' }
] as const
const OWNER = 'agrivision_owner'
const DATABASE_AUDIENCE = 'https://ossrdbms-aad.database.windows.net'
const farmer = newApiKey('farmer')
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

t.test(`two instances, ${SOAK_MS / 1000} s, ${TOKEN_S} s tokens: no secret anywhere, nothing lost`, { timeout: SOAK_MS + 180_000 }, async t => {
  const postgres = await startPostgres(t, { tls: true })
  const pgTls = postgres.tls!
  // README, Keyless on Azure, PostgreSQL: the first app's role and its database, then the owner role for two apps.
  // (CREATE ROLE … LOGIN stands for pgaadauth_create_principal; its password is set when a token is minted.)
  const [appA, appB] = APPS
  await asAdmin(postgres.url, async admin => {
    for (const app of APPS) await admin.query(`CREATE ROLE ${ident(app.name)} LOGIN`)
    await admin.query(`CREATE DATABASE keyless OWNER ${ident(appA.name)}`)
    await admin.query(`CREATE ROLE ${OWNER} NOLOGIN`)
    await admin.query(`GRANT ${OWNER} TO ${ident(appA.name)}, ${ident(appB.name)}`)
    await admin.query(`ALTER DATABASE keyless OWNER TO ${OWNER}`)
    for (const app of APPS) await admin.query(`ALTER ROLE ${ident(app.name)} SET role = '${OWNER}'`)
  })
  const keylessUrl = new URL(postgres.url)
  keylessUrl.pathname = '/keyless'
  // The schema grant is the database's own: made connected to it.
  await asAdmin(keylessUrl.toString(), async admin => { await admin.query(`GRANT CREATE ON SCHEMA public TO ${OWNER}`) })
  const redis = await startEntraRedis(t)
  const { Client: PgClient } = await import('pg')
  const admin: Client = new PgClient({ connectionString: postgres.url })
  await admin.connect()
  t.teardown(() => admin.end())

  const identities = Object.fromEntries(APPS.map(({ clientId, oid, name }) => [clientId, { oid, name }]))
  const fake = await new FakeAzure({ tokenShape: 'jwt', tokenLifetimeSec: TOKEN_S, identities }).start()
  t.teardown(() => fake.close())
  /** Each role's password rotations (a role holds one password: its identity's token minted last). */
  const rotations = new Map<string, Array<{ at: number, expiresOnMs: number }>>(APPS.map(app => [app.name, []]))
  fake.onMint = async (minted: MintedToken) => {
    if (minted.resource === DATABASE_AUDIENCE) {
      await setRolePassword(admin, minted.identity.name, minted.token, minted.expiresOnMs)
      rotations.get(minted.identity.name)!.push({ at: Date.now(), expiresOnMs: minted.expiresOnMs })
    } else if (minted.resource.startsWith('https://redis')) {
      await redis.addToken(minted.identity.oid, minted.token, minted.expiresOnMs)
    }
  }
  // Ends every session of the role whose login token has expired (whether Azure does is not documented: the worst case).
  let sessionsKilled = 0
  const enforcer = setInterval(() => {
    void (async () => {
      // usename: the login role (the session user), whatever role the session then SETs.
      const { rows } = await admin.query<{ pid: number, role: string, started: Date }>(
        'SELECT pid, usename AS role, backend_start AS started FROM pg_stat_activity WHERE usename = ANY($1)', [APPS.map(app => app.name)])
      for (const { pid, role, started } of rows) {
        const login = rotations.get(role)!.filter(r => r.at <= started.getTime() + 1_000).at(-1)
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
    DATABASE_AUTH: 'entra',
    DATABASE_CA_FILE: pgTls.caFile,
    REDIS_URL: redis.url,
    REDIS_AUTH: 'entra',
    REDIS_CA_FILE: redis.ca.caFile
  }
  const lifetime = { maxLifetimeMs: SOAK_MS + 170_000 }
  // Each app: its identity (AZURE_CLIENT_ID) and its role in DATABASE_URL; the same database and Redis.
  const servers = await Promise.all(APPS.map(async app => await spawnServer({
    ...env,
    AZURE_CLIENT_ID: app.clientId,
    DATABASE_URL: pgTls.tcpUrl(app.name, { host: 'localhost', database: 'keyless' })
  }, lifetime)))
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
  const counted = await waitForRecords(keylessUrl.toString(), made.length)
  t.equal(counted, made.length, 'every record written to PostgreSQL')
  t.equal(sessionsKilled, 0, 'no PostgreSQL session outlived its login token')
  t.equal(redis.closedForExpiry, 0, 'no Redis connection was closed for an expired token')
  // Both identities were used, for both scopes, and neither instance's tables are the other's.
  for (const app of APPS) {
    const scopes = new Set(fake.minted.filter(minted => minted.clientId === app.clientId).map(minted => minted.resource))
    t.ok(scopes.has(DATABASE_AUDIENCE) && scopes.has('https://redis.azure.com'), `${app.name}'s identity got tokens for PostgreSQL and Redis`)
    t.ok(redis.connections.some(connection => connection.user === app.oid), `Redis connections authenticated as ${app.name}'s object id`)
  }
  const owners = await asAdmin(keylessUrl.toString(), async client => (await client.query<{ name: string, owner: string }>(
    "SELECT tablename AS name, tableowner AS owner FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")).rows)
  t.ok(owners.some(({ name }) => name === 'identifications'), `the tables are there (${owners.length})`)
  t.same(owners.filter(({ owner }) => owner !== OWNER), [], `every table is owned by ${OWNER}, whichever instance migrated first`)

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
  // Not asserted (a login racing its own identity's refresh may be refused once), but the one-identity artifact was
  // here: a login refused for each of the other instance's fetches.
  t.comment(`PostgreSQL refused ${(postgres.serverLog().match(/password authentication failed/g) ?? []).length} logins (its log's last 100-200 kB)`)
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
