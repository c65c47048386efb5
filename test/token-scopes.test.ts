// One credential, one cached token per scope (src/azure/tokens.ts), through the real DefaultAzureCredential against
// the fake identity endpoint (its own process: MSAL's cache starts empty, and caches no token under 5 minutes, so
// every fetch of a short token reaches the fake and is counted). Each scope has its own single-flight fetch: a
// hung scope blocks neither the others nor more than one socket; no failure becomes an unhandled rejection; a run
// with short tokens costs about one fetch per refresh interval per scope.
import t from 'tap'
import { pino } from 'pino'
import { FakeAzure } from './support/fake-azure.ts'
import { createAzureTokens } from '../src/azure/credential.ts'
import type { AzureTokens } from '../src/azure/tokens.ts'

// MSAL's cache is process-wide: each test takes scopes of its own, so none starts with another's tokens.
const DATABASE = 'https://ossrdbms-aad.database.windows.net/.default'
const REDIS = 'https://redis.azure.com/.default'
const scopesOf = (test: string): [string, string] => [`https://ossrdbms-aad.${test}.example/.default`, `https://redis.${test}.example/.default`]
const audience = (scope: string): string => scope.replace(/\/\.default$/, '')

const fake = await new FakeAzure({ tokenShape: 'jwt' }).start()
t.teardown(() => fake.close())
fake.applyIdentityEnv()

const unhandled: unknown[] = []
process.on('unhandledRejection', reason => { unhandled.push(reason) })

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const fetchesFor = (scope: string): number => fake.tokenRequests.filter(r => r.resource === audience(scope)).length

// Generous timeouts (the machine may be busy), except where a hang is the point.
function tokens (timeoutMs = 5_000): AzureTokens {
  return createAzureTokens({ tokenTimeoutMs: timeoutMs }, pino({ level: 'silent' }))
}

t.test('10 concurrent first calls per scope: one fetch per scope, the same provider for the same scope', async t => {
  fake.tokenLifetimeSec = 3600
  const azure = tokens()
  t.equal(azure.forScope(DATABASE, 'database'), azure.forScope(DATABASE), 'memoised per scope')
  const before = { db: fetchesFor(DATABASE), redis: fetchesFor(REDIS) }
  const answers = await Promise.all([
    ...Array.from({ length: 10 }, () => azure.forScope(DATABASE).getAccessToken()),
    ...Array.from({ length: 10 }, () => azure.forScope(REDIS).getAccessToken())
  ])
  t.equal(fetchesFor(DATABASE) - before.db, 1, 'one fetch for the database scope')
  t.equal(fetchesFor(REDIS) - before.redis, 1, 'one fetch for the redis scope')
  t.equal(new Set(answers.slice(0, 10).map(a => a.token)).size, 1, 'every database caller has the same token')
  t.equal(new Set(answers.slice(10).map(a => a.token)).size, 1, 'every redis caller has the same token')
  t.not(answers[0]?.token, answers[10]?.token, 'a token per scope')
  const claims = JSON.parse(Buffer.from(answers[0]!.token.split('.')[1]!, 'base64url').toString('utf8'))
  t.equal(claims.aud, audience(DATABASE), 'the token is for its scope')
  t.match(claims, { oid: String, tid: String, exp: Number, nbf: Number, iat: Number }, 'shaped like an Entra ID token')
  t.same(azure.scopes(), [DATABASE, REDIS])
  t.same(azure.statsByScope().map(s => [s.scope, s.stats.fetches]), [[DATABASE, 1], [REDIS, 1]])
  t.equal(azure.totals().fetches, 2, 'the totals sum the scopes')
  t.same(azure.failing(), [], 'nothing failing')
})

t.test('a hung fetch for one scope blocks neither the other scope nor more than one socket', async t => {
  fake.tokenLifetimeSec = 3600
  const [DATABASE, REDIS] = scopesOf('hang')
  fake.tokenFaultByResource.set(audience(DATABASE), 'hang')
  const azure = tokens(1_500)
  const database = azure.forScope(DATABASE, 'database')
  const redis = azure.forScope(REDIS, 'redis')

  // Waves of database callers during the hang, with redis callers among them.
  const outcomes = { dbRejected: 0, dbResolved: 0, redisMs: [] as number[] }
  for (let wave = 0; wave < 6; wave++) {
    const started = performance.now()
    const db = Array.from({ length: 10 }, () =>
      database.getAccessToken().then(() => { outcomes.dbResolved++ }, () => { outcomes.dbRejected++ }))
    await Promise.all(Array.from({ length: 10 }, () => redis.getAccessToken()))
    outcomes.redisMs.push(performance.now() - started)
    await Promise.all(db)
    await sleep(300)
  }
  t.equal(outcomes.dbResolved, 0, 'no database token while its scope hangs')
  t.equal(outcomes.dbRejected, 60, 'every database caller was told (TokenUnavailableError), none left hanging')
  t.ok(Math.max(...outcomes.redisMs) < 1_000, `redis callers did not wait for the hung scope's 1.5 s timeout (slowest wave ${Math.round(Math.max(...outcomes.redisMs))} ms)`)
  t.equal(fake.maxOpenTokenSocketsByResource.get(audience(DATABASE)), 1, 'one socket at most for the hung scope')
  t.equal(database.stats.timeouts >= 1, true, 'the hung fetch timed out')
  t.ok(database.stats.fetches <= 2, `one fetch per timeout and retry delay, not one per caller (${database.stats.fetches})`)
  const failing = azure.failing()
  t.same(failing.map(f => [f.scope, f.usedBy]), [[DATABASE, ['database']]], 'the database scope is failing, named by its user')
  t.match(failing[0]?.reason, /did not answer within 1500 ms/)
  t.notMatch(failing[0]?.reason, /eyJ/, 'no token in the reason')

  fake.tokenFaultByResource.delete(audience(DATABASE))
  fake.releaseHung()
  await sleep(3_100) // the retry delay
  const recovered = await database.getAccessToken()
  t.ok(recovered.expiresOnMs > Date.now(), 'the database scope recovers')
  t.same(azure.failing(), [], 'nothing failing after recovery')
  t.equal(fake.openTokenSocketsFor(audience(DATABASE)), 0, 'no socket left open')
})

t.test('an outage of one scope through refreshes: no unhandled rejection, the other scope unaffected', async t => {
  fake.tokenLifetimeSec = 6
  const [DATABASE, REDIS] = scopesOf('outage')
  const azure = tokens()
  const database = azure.forScope(DATABASE, 'database')
  const redis = azure.forScope(REDIS, 'redis')
  await Promise.all([database.getAccessToken(), redis.getAccessToken()])
  fake.tokenFaultByResource.set(audience(REDIS), 'error')
  let redisFailures = 0
  let databaseFailures = 0
  const until = Date.now() + 8_000 // past the redis token's expiry: refreshes in the background fail, then callers do
  while (Date.now() < until) {
    await Promise.all([
      database.getAccessToken().catch(() => { databaseFailures++ }),
      redis.getAccessToken().catch(() => { redisFailures++ })
    ])
    await sleep(100)
  }
  fake.tokenFaultByResource.delete(audience(REDIS))
  t.equal(databaseFailures, 0, 'the database scope never failed')
  t.ok(redisFailures > 0, `the redis scope failed once its token ran out (${redisFailures} callers told)`)
  // The credential retries a 500 itself within one fetch: at most one failed fetch per retry delay (3 s) over 8 s.
  t.ok(redis.stats.failures >= 1 && redis.stats.failures <= 4, `failed fetches: ${redis.stats.failures}, not one per caller`)
  // Recovery: the fetch of the outage may still be in the credential's own retries; the next one gets a token.
  let recovered = false
  for (let i = 0; i < 40 && !recovered; i++) {
    recovered = await redis.getAccessToken().then(() => true, async () => { await sleep(500); return false })
  }
  t.ok(recovered, 'the redis scope recovers')
  await sleep(50)
  t.same(unhandled, [], 'no unhandled rejection')
})

t.test('a run with short tokens: about one fetch per refresh interval per scope, onToken told of each', async t => {
  fake.tokenLifetimeSec = 6
  const azure = tokens(2_000)
  const scopes = scopesOf('run').map(scope => azure.forScope(scope))
  const seen = scopes.map(() => new Set<string>())
  const told = scopes.map(() => 0)
  scopes.forEach((provider, i) => provider.onToken(() => { told[i]!++ }))
  const before = scopes.map(p => p.stats.fetches)
  const runMs = 20_000
  const started = Date.now()
  let expiredHandedOut = 0
  while (Date.now() - started < runMs) {
    const answers = await Promise.all(scopes.map(p => p.getAccessToken()))
    answers.forEach((a, i) => {
      seen[i]!.add(a.token)
      if (a.expiresOnMs <= Date.now()) expiredHandedOut++
    })
    await sleep(100)
  }
  t.equal(expiredHandedOut, 0, 'never an expired token')
  // A 5-6 s token (expires_on is in whole seconds) is refreshed halfway through its life: every 2.5-3 s.
  scopes.forEach((provider, i) => {
    const fetches = provider.stats.fetches - before[i]!
    t.ok(fetches >= Math.floor(runMs / 3_000) && fetches <= Math.ceil(runMs / 2_500) + 2,
      `${provider.scope}: ${fetches} fetches over ${runMs / 1000} s (a refresh every 2.5-3 s)`)
    t.equal(told[i], fetches, 'onToken told of each new token')
    t.equal(seen[i]!.size, fetches, 'each fetched token was used')
  })

  t.ok(scopes[0]!.current() !== undefined, 'current() gives the cached token without fetching')
})

t.test('getAccessToken({ minValidityMs }): callers needing more life left wait for one shared fetch', async t => {
  fake.tokenLifetimeSec = 20
  const [scope] = scopesOf('needy')
  const database = tokens(2_000).forScope(scope)
  const first = await database.getAccessToken()
  t.same(database.current(), first, 'current() is the cached token')
  await sleep(3_200) // past the retry delay: a needy caller may start a fetch
  const fetchesBefore = database.stats.fetches
  t.equal((await database.getAccessToken({ minValidityMs: 5_000 })).token, first.token, 'enough left: the cached token, no fetch')
  const needy = await Promise.all(Array.from({ length: 5 }, () => database.getAccessToken({ minValidityMs: 18_000 })))
  t.equal(database.stats.fetches - fetchesBefore, 1, 'one shared fetch for five callers asking for more life')
  t.equal(new Set(needy.map(a => a.token)).size, 1, 'they all got the new token')
  t.not(needy[0]?.token, first.token, 'a new token')
  const again = await database.getAccessToken({ minValidityMs: 60_000 })
  t.equal(again.token, needy[0]?.token, 'more than any token has: the fresh one, no second fetch within the retry delay')
  t.equal(database.stats.fetches - fetchesBefore, 1)
})
