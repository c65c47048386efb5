// PostgreSQL with the managed identity's token (DATABASE_AUTH=entra), against a real PostgreSQL speaking TLS only
// (test/support/postgres.ts: a test CA, hostssl scram-sha-256, hostnossl reject) and the fake identity endpoint
// minting Entra-shaped JWTs. As Azure accepts a token until its expiry, the fake sets the role's password to each
// token it mints (ALTER ROLE … PASSWORD … VALID UNTIL exp) before handing it out, and an enforcer ends any session
// whose login token has expired (whether Azure does is not documented: the worst case). Short tokens, so that
// refreshes and recycled connections happen during the test. SQLite and DATABASE_AUTH=password are untouched
// (the *-postgres tests).
import { Writable } from 'node:stream'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import type { Client } from 'pg'
import { FakeAzure, type MintedToken } from './support/fake-azure.ts'
import { startPostgres, asAdmin, setRolePassword, ident } from './support/postgres.ts'
import { makeTestCa } from './support/test-ca.ts'
import { buildTestApp, testConfig } from './helper.ts'
import { identify, sendJson } from './support/http.ts'
import * as images from './support/images.ts'
import { ConfigError } from '../src/config.ts'

const ROLE = 'agrivision-app'
const DATABASE_AUDIENCE = 'https://ossrdbms-aad.database.windows.net'
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

// Longer than the suite's 120 s per file: 75 s of rotations and the refused-server cases (each waits out a connection).
t.setTimeout(300_000)
const server = await startPostgres(t, { tls: true })
const tls = server.tls!
const fake = await new FakeAzure({ tokenShape: 'jwt', identities: { system: { oid: '6f1e0c1e-0000-4000-8000-0000000000a1', name: ROLE } } }).start()
t.teardown(() => fake.close())
fake.applyIdentityEnv()

// The role (as pgaadauth_create_principal would make it) and one database per test, which it owns.
await asAdmin(server.url, async admin => { await admin.query(`CREATE ROLE ${ident(ROLE)} LOGIN`) })
let databases = 0
async function freshDatabase (): Promise<string> {
  const name = `entra_${++databases}`
  await asAdmin(server.url, async admin => { await admin.query(`CREATE DATABASE ${name} OWNER ${ident(ROLE)}`) })
  return name
}

/** The rotations: each token minted for the database becomes the role's password before the service gets it. */
const rotations: Array<{ at: number, expiresOnMs: number }> = []
const rotator = await adminClient()
fake.onMint = async (minted: MintedToken) => {
  if (minted.resource !== DATABASE_AUDIENCE) return
  await setRolePassword(rotator, minted.identity.name, minted.token, minted.expiresOnMs)
  rotations.push({ at: Date.now(), expiresOnMs: minted.expiresOnMs })
}

async function adminClient (): Promise<Client> {
  const { Client } = await import('pg')
  const client = new Client({ connectionString: server.url })
  await client.connect()
  t.teardown(() => client.end())
  return client
}

/**
 * Ends every session of the role whose login token has expired, as Azure may. A session's token is the last one set
 * before its backend started (with a second's leeway: the login may have used the next one).
 */
function startEnforcer (admin: Client): { killed: () => number, stop: () => void } {
  let killed = 0
  const timer = setInterval(() => {
    void (async () => {
      const { rows } = await admin.query<{ pid: number, started: Date }>(
        'SELECT pid, backend_start AS started FROM pg_stat_activity WHERE usename = $1', [ROLE])
      for (const { pid, started } of rows) {
        const login = rotations.filter(r => r.at <= started.getTime() + 1_000).at(-1)
        if (login !== undefined && login.expiresOnMs <= Date.now()) {
          killed++
          await admin.query('SELECT pg_terminate_backend($1)', [pid])
        }
      }
    })().catch(() => {})
  }, 500)
  return { killed: () => killed, stop: () => { clearInterval(timer) } }
}

function capture (): { log: ReturnType<typeof pino>, text: () => string } {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  return { log: pino({ level: 'info' }, stream), text: () => lines.join('') }
}

function entraEnv (database: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: tls.tcpUrl(ROLE, { host: 'localhost', database }),
    DATABASE_AUTH: 'entra',
    DATABASE_CA_FILE: tls.caFile,
    AZURE_TOKEN_TIMEOUT_MS: '1000',
    ...extra
  }
}

async function countRecords (database: string): Promise<number> {
  const url = new URL(server.url)
  url.pathname = `/${database}`
  return await asAdmin(url.toString(), async admin => Number((await admin.query('SELECT count(*) AS n FROM identifications')).rows[0].n))
}

function noTokenIn (t: Test, text: string): void {
  t.notOk(/eyJ[\w-]+\.[\w-]+\./.test(text), 'nothing shaped like a token in the logs')
  const leaked = fake.minted.filter(m => text.includes(m.token)).length
  t.equal(leaked, 0, 'no minted token in the logs')
}

t.test('writes all the time with 30 s tokens: fresh tokens only, connections recycled before expiry, every record written', async t => {
  fake.tokenLifetimeSec = 30
  const database = await freshDatabase()
  const logs = capture()
  const app = await buildTestApp(t, { env: entraEnv(database), logger: logs.log })
  const enforcer = startEnforcer(await adminClient())
  t.teardown(enforcer.stop)
  t.ok(app.azureTokens !== null, 'the app has the managed identity')

  const photo = await images.jpeg(40, 30)
  const runMs = 75_000
  const started = Date.now()
  let sent = 0
  const failed: string[] = []
  while (Date.now() - started < runMs) {
    const res = await identify(app, photo)
    sent++
    if (res.body.errors) failed.push(JSON.stringify(res.body.errors))
    await sleep(250)
  }
  await app.history!.flushed()
  t.same(failed, [], 'no failed identification')
  t.equal(await countRecords(database), sent, `every record written (${sent})`)
  t.equal(enforcer.killed(), 0, 'no session outlived its login token (the enforcer ended none)')

  // The service's own view: about one fetch per refresh interval for the database scope (30 s tokens: every 15 s).
  const scope = app.azureTokens!.forScope('https://ossrdbms-aad.database.windows.net/.default')
  t.ok(scope.stats.fetches >= 4 && scope.stats.fetches <= 8, `${scope.stats.fetches} token fetches over ${runMs / 1000} s (one per ~15 s)`)
  const metrics = await app.inject('/metrics')
  t.match(metrics.body, /agrivision_token_fetches_by_scope_total\{scope="https:\/\/ossrdbms-aad\.database\.windows\.net\/\.default"\} \d+/, 'per-scope token metrics')
  t.match(metrics.body, new RegExp(`agrivision_token_fetches_total ${scope.stats.fetches}\\b`), 'the total sums the scopes')
  const logins = (server.serverLog().match(/connection authorized: user=agrivision-app/g) ?? []).length
  t.ok(logins > 2, `connections recycled: ${logins} logins over the run`)
  const refused = (server.serverLog().match(/password authentication failed for user "agrivision-app"/g) ?? []).length
  // A login never uses a token whose replacement is being fetched (here: already the role's password).
  t.equal(refused, 0, 'no login refused')
  if (refused > 0) t.comment(server.serverLog().split('\n').filter(line => /password authentication failed|DETAIL|expired/.test(line)).join('\n'))
  t.comment(`logins ${logins}, refused logins ${refused}, token fetches ${scope.stats.fetches}, records ${sent}`)
  noTokenIn(t, logs.text())
})

t.test('identity endpoint down: records buffered, history STORAGE_UNAVAILABLE, ready degraded naming the database; then recovered', async t => {
  fake.tokenLifetimeSec = 12
  const database = await freshDatabase()
  const logs = capture()
  const app = await buildTestApp(t, { env: entraEnv(database), logger: logs.log })
  const photo = await images.jpeg(40, 30)
  for (let i = 0; i < 100 && !app.database!.ready(); i++) await sleep(100)
  t.ok(app.database!.ready(), 'migrated over TLS with a token')
  t.notOk((await identify(app, photo)).body.errors, 'identified')
  await app.history!.flushed()
  t.equal(await countRecords(database), 1)

  fake.tokenFaultByResource.set(DATABASE_AUDIENCE, 'error')
  // Past the token's expiry: its connections are recycled, no new one can log in.
  const admin = await adminClient()
  await sleep(12_500)
  await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [ROLE])
  let during = 0
  for (let i = 0; i < 5; i++) {
    const res = await identify(app, photo)
    t.notOk(res.body.errors, 'identifications go on')
    during++
  }
  await sleep(1_000)
  const history = await sendJson(app, { query: '{ identifications(first: 5) { edges { node { id } } } }' })
  t.equal(history.body.errors?.[0]?.extensions?.code, 'STORAGE_UNAVAILABLE', 'the history query says the storage is unavailable')
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200, 'still ready: identifications work')
  t.ok(ready.json().degraded?.includes('history'), `history degraded (${JSON.stringify(ready.json().degraded)})`)
  t.ok(ready.json().degraded?.some((d: string) => /^database: no Microsoft Entra ID token for https:\/\/ossrdbms-aad/.test(d)), 'the database named as lacking its token')
  t.equal(await countRecords(database), 1, 'nothing written meanwhile')

  fake.tokenFaultByResource.delete(DATABASE_AUDIENCE)
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline && await countRecords(database) < 1 + during) await sleep(500)
  t.equal(await countRecords(database), 1 + during, 'the buffered records were written once a token came back')
  const after = await app.inject('/health/ready')
  t.notOk(after.json().degraded, 'no longer degraded')
  t.notOk((await sendJson(app, { query: '{ identifications(first: 5) { edges { node { id } } } }' })).body.errors, 'history answers again')
  t.match(logs.text(), /access token fetch failed/, 'the failed fetches are logged')
  t.match(logs.text(), /no Microsoft Entra ID token to log in with/, 'the database says why it cannot log in')
  noTokenIn(t, logs.text())
})

t.test('refused configurations: a clear ConfigError naming the variable', async t => {
  const url = tls.tcpUrl(ROLE, { host: 'localhost' })
  const refused = (env: Record<string, string>, message: RegExp): void => {
    let error: unknown
    try {
      testConfig({ DATA_DIR: join(tmpdir(), 'agrivision-unused'), ...env })
    } catch (err) {
      error = err
    }
    t.ok(error instanceof ConfigError, `${JSON.stringify(env)}: a ConfigError`)
    t.match((error as Error | undefined)?.message, message)
  }
  refused({ DATABASE_AUTH: 'entra', DATABASE_URL: url.replace(`${ROLE}@`, `${ROLE}:secret@`) }, /remove the password from DATABASE_URL/)
  refused({ DATABASE_AUTH: 'entra', DATABASE_URL: `${url}?sslmode=require` }, /sslmode=verify-full.*sslmode=require/)
  refused({ DATABASE_AUTH: 'entra', DATABASE_URL: `${url}?sslmode=disable` }, /sslmode=disable/)
  refused({ DATABASE_AUTH: 'entra', DATABASE_URL: `${url}?sslrootcert=/etc/ca.pem` }, /sslrootcert.*DATABASE_CA_FILE/)
  refused({ DATABASE_AUTH: 'entra', DATABASE_URL: `${url}?host=/tmp` }, /no "host" parameter/)
  refused({ DATABASE_AUTH: 'entra', DATABASE_URL: url.replace(`${ROLE}@`, '') }, /needs the user in DATABASE_URL/)
  refused({ DATABASE_AUTH: 'entra' }, /DATABASE_AUTH=entra needs DATABASE_URL/)
  refused({ DATABASE_AUTH: 'entra', DATABASE_URL: url, DATABASE_CA_FILE: '/nonexistent/ca.pem' }, /DATABASE_CA_FILE cannot be read \(ENOENT\)/)
  refused({ DATABASE_AUTH: 'entra', DATABASE_URL: url, DATABASE_CA_FILE: '/etc/hostname' }, /PEM certificates/)
  refused({ DATABASE_URL: url, DATABASE_CA_FILE: tls.caFile }, /DATABASE_AUTH=entra only/)
  refused({ DATABASE_AUTH: 'kerberos', DATABASE_URL: url }, /DATABASE_AUTH/)
  const ok = testConfig({ DATABASE_AUTH: 'entra', DATABASE_URL: `${url}?sslmode=verify-full`, DATABASE_CA_FILE: tls.caFile })
  t.match(ok.database, { dialect: 'postgres', url, entra: { scope: 'https://ossrdbms-aad.database.windows.net/.default' } }, 'sslmode=verify-full is what entra does anyway')
  t.match(testConfig({ DATABASE_URL: `${url.replace(`${ROLE}@`, `${ROLE}:secret@`)}?sslmode=require` }).database,
    { dialect: 'postgres', url: `${url.replace(`${ROLE}@`, `${ROLE}:secret@`)}?sslmode=require` }, 'DATABASE_AUTH=password: the URL as it is, as before')
})

t.test('a server certificate from another CA, or a server without TLS: the connection fails, the service stays up, no token logged', async t => {
  fake.tokenLifetimeSec = 300
  const otherCa = makeTestCa(t, 'not the server').caFile
  const plain = await startPostgres(t) // no TLS at all
  const cases: Array<{ name: string, env: Record<string, string>, log: RegExp }> = [
    { name: 'another CA', env: entraEnv(await freshDatabase(), { DATABASE_CA_FILE: otherCa }), log: /self.signed|unable to verify|certificate/i },
    { name: 'Node\'s CAs only', env: { ...entraEnv(await freshDatabase()), DATABASE_CA_FILE: '' }, log: /self.signed|unable to verify|certificate/i },
    { name: 'no TLS on the server', env: entraEnv('postgres', { DATABASE_URL: plain.url }), log: /does not support SSL/i },
    {
      name: 'a user that is not the identity\'s role',
      env: entraEnv('postgres', { DATABASE_URL: tls.tcpUrl('not-the-identity', { host: 'localhost' }) }),
      log: /PostgreSQL refused the Microsoft Entra ID token \(28P01 password authentication failed\)/
    }
  ]
  for (const { name, env, log } of cases) {
    const logs = capture()
    const app = await buildTestApp(t, { env, logger: logs.log })
    const photo = await images.jpeg(40, 30)
    t.notOk((await identify(app, photo)).body.errors, `${name}: identifications go on`)
    const history = await sendJson(app, { query: '{ identifications(first: 5) { edges { node { id } } } }' })
    t.equal(history.body.errors?.[0]?.extensions?.code, 'STORAGE_UNAVAILABLE', `${name}: history unavailable`)
    const ready = await app.inject('/health/ready')
    t.equal(ready.statusCode, 200, `${name}: ready (degraded)`)
    t.ok(ready.json().degraded?.includes('history'), `${name}: history degraded`)
    t.match(logs.text(), log, `${name}: the log says why`)
    noTokenIn(t, logs.text())
    await app.close()
  }
})
