// Caller authentication: Entra ID access tokens verified against a loopback JWKS (signature, alg,
// issuer, audience, tenant, lifetime, scope/role), API keys by SHA-256, both together, anonymous;
// the JWKS cache (one fetch, refetch on an unknown kid within jose's cooldown, outage → stale keys or
// 503); the challenge headers; logs that name the caller but never hold the token or key; and
// `npm run apikey:new`.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { promisify } from 'node:util'
import { Writable } from 'node:stream'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { SignJWT } from 'jose'
import { buildTestApp } from './helper.ts'
import { sendJson, type Answer } from './support/http.ts'
import { identifyBody } from './support/multipart.ts'
import { jpeg } from './support/images.ts'
import {
  AUDIENCE, CLIENT_APP_ID, DAEMON_APP_ID, OTHER_TENANT_ID, REQUIRED_ROLE, TENANT_ID, USER_OID,
  JwksServer, appClaims, b64url, newSigningKey, nowSeconds, publicPem, sign, userClaims, v1Issuer, v2Issuer
} from './support/jwks.ts'
import { loadConfig, ConfigError } from '../src/config.ts'
import { newApiKey } from '../src/callers/api-keys.ts'

const run = promisify(execFile)

const VISION_QUERY = '{ vision { backend } }'
const photo = await jpeg(64, 48)

// jose's JWKS cache (cooldown, max age) and our failure back-off read Date.now; token lifetimes use
// the real clock (jose reads `new Date()`, which this does not move).
const realDateNow = Date.now
let clockOffset = 0
Date.now = () => realDateNow() + clockOffset
t.teardown(() => { Date.now = realDateNow })
const advanceClock = (ms: number): void => { clockOffset += ms }

async function ask (app: FastifyInstance, headers: Record<string, string> = {}, query = VISION_QUERY): Promise<Answer> {
  return await sendJson(app, { query }, headers)
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

function ok (t: Test, answer: Answer, what: string): void {
  t.same([answer.statusCode, answer.body], [200, { data: { vision: { backend: 'SIMULATED' } } }], what)
}

interface Refusal {
  status: number
  code: string
  message?: RegExp
  /** The whole WWW-Authenticate value, or a pattern; null: no header. */
  challenge?: RegExp | string | null
  /** Must not appear in the answer (body or headers). */
  secret?: string
}

function refused (t: Test, answer: Answer, expected: Refusal, what: string): void {
  t.test(what, async t => {
    t.equal(answer.statusCode, expected.status, 'HTTP status')
    t.equal(answer.body.data, null, 'no data')
    t.equal(answer.body.errors?.length, 1, 'one error')
    const error = answer.body.errors?.[0]
    t.equal(error?.extensions.code, expected.code, 'extensions.code')
    if (expected.message) t.match(error?.message, expected.message, 'message says what is wrong')
    const challenge = answer.headers['www-authenticate']
    if (expected.challenge === null) t.equal(challenge, undefined, 'no WWW-Authenticate')
    else if (typeof expected.challenge === 'string') t.equal(challenge, expected.challenge, 'WWW-Authenticate')
    else if (expected.challenge) t.match(challenge, expected.challenge, 'WWW-Authenticate')
    if (expected.secret) {
      t.notOk(answer.raw.includes(expected.secret), 'the body does not echo the credential')
      t.notOk(JSON.stringify(answer.headers).includes(expected.secret), 'the headers do not echo the credential')
    }
  })
}

const invalidToken = (description: RegExp): RegExp =>
  new RegExp(`^Bearer realm="agrivision", error="invalid_token", error_description="[^"]*${description.source}`)

function entraEnv (jwksUri: string, extra: Record<string, string> = {}): Record<string, string> {
  return { AUTH_MODE: 'entra', ENTRA_TENANT_ID: TENANT_ID, ENTRA_AUDIENCE: AUDIENCE, ENTRA_JWKS_URI: jwksUri, ...extra }
}

t.test('entra: tokens are verified and authorized', async t => {
  const jwks = await new JwksServer().start()
  t.teardown(() => jwks.close())
  const key = await jwks.addKey()
  const app = await buildTestApp(t, { env: entraEnv(jwks.uri) })

  t.equal(jwks.fetches, 0, 'the JWKS is fetched on first use, not at start')

  await t.test('valid tokens pass', async t => {
    ok(t, await ask(app, bearer(await sign(key, userClaims()))), 'a user token with the scope (v2 issuer)')
    t.equal(jwks.fetches, 1, 'one JWKS fetch')

    const upload = await identifyBody(photo)
    const res = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: upload.payload,
      headers: { ...upload.headers, ...bearer(await sign(key, userClaims())) }
    })
    t.equal(res.statusCode, 200, 'identifyVehicle with a user token')
    const identified = res.json().data?.identifyVehicle
    t.equal(identified?.backend, 'SIMULATED')
    t.equal(identified?.image?.width, 64)

    const v1 = userClaims({ iss: v1Issuer(), ver: '1.0', azp: undefined, appid: CLIENT_APP_ID })
    ok(t, await ask(app, bearer(await sign(key, v1))), 'a v1 token (sts.windows.net issuer)')
    ok(t, await ask(app, bearer(await sign(key, appClaims()))), 'an app token with the role')
    ok(t, await ask(app, bearer(await sign(key, appClaims({ idtyp: undefined, ver: '1.0', iss: v1Issuer(), azp: undefined, appid: DAEMON_APP_ID })))),
      'a v1 app token without idtyp (roles, no scp)')
    ok(t, await ask(app, bearer(await sign(key, userClaims({ scp: `User.Read ${REQUIRED_ROLE}` })))), 'the scope anywhere in scp')
    ok(t, await ask(app, bearer(await sign(key, userClaims({ exp: nowSeconds() - 30 })))), 'expired 30 s ago: within the 60 s clock tolerance')
    ok(t, await ask(app, bearer(await sign(key, userClaims({ nbf: nowSeconds() + 30 })))), 'valid in 30 s: within the clock tolerance')
    ok(t, await ask(app, { authorization: `bearer  ${await sign(key, userClaims())}` }), 'the scheme is case-insensitive')
    ok(t, await ask(app, bearer(await sign(key, userClaims(), undefined))), 'no kid, one key published')
    t.equal(jwks.fetches, 1, 'still one JWKS fetch: the key set is cached for the app')
  })

  await t.test('invalid tokens: 401 UNAUTHENTICATED, invalid_token', async t => {
    const now = nowSeconds()
    const cases: Array<[string, string, RegExp]> = [
      ['expired', await sign(key, userClaims({ iat: now - 7200, nbf: now - 7200, exp: now - 3600 })), /The access token has expired\./],
      ['not yet valid', await sign(key, userClaims({ nbf: now + 600, exp: now + 4200 })), /not valid yet/],
      ['wrong audience', await sign(key, userClaims({ aud: 'api://someone-else' })), /wrong audience/],
      ['wrong issuer', await sign(key, userClaims({ iss: 'https://login.microsoftonline.com/common/v2.0' })), /wrong issuer/],
      ['another tenant (its tid and issuer)', await sign(key, userClaims({ tid: OTHER_TENANT_ID, iss: v2Issuer(OTHER_TENANT_ID) })), /wrong issuer/],
      ['another tenant (its tid, our issuer)', await sign(key, userClaims({ tid: OTHER_TENANT_ID })), /another Microsoft Entra tenant/],
      ['no exp', await sign(key, userClaims({ exp: undefined })), /has no exp claim/],
      ['no caller id', await sign(key, userClaims({ oid: undefined, sub: undefined })), /names no user/]
    ]
    for (const [what, token, message] of cases) {
      refused(t, await ask(app, bearer(token)), { status: 401, code: 'UNAUTHENTICATED', message, challenge: invalidToken(message), secret: token }, what)
    }

    const fetchesBefore = jwks.fetches
    const header = b64url({ alg: 'none', typ: 'JWT' })
    const unsigned = `${header}.${b64url(userClaims())}.`
    refused(t, await ask(app, bearer(unsigned)), { status: 401, code: 'UNAUTHENTICATED', message: /algorithm is not accepted/, challenge: invalidToken(/algorithm/), secret: unsigned }, 'alg: none')

    // Algorithm confusion: HS256 with the public key's bytes as the HMAC secret.
    const pem = await publicPem(key)
    const confused = await new SignJWT(userClaims()).setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: key.kid }).sign(new TextEncoder().encode(pem))
    refused(t, await ask(app, bearer(confused)), { status: 401, code: 'UNAUTHENTICATED', message: /algorithm is not accepted \(only RS256\)/, secret: confused }, 'HS256 signed with the public key')
    const confusedJwk = await new SignJWT(userClaims()).setProtectedHeader({ alg: 'HS256', kid: key.kid }).sign(Buffer.from(key.publicJwk.n as string, 'base64url'))
    refused(t, await ask(app, bearer(confusedJwk)), { status: 401, code: 'UNAUTHENTICATED', message: /algorithm is not accepted/ }, 'HS256 signed with the modulus')
    t.equal(jwks.fetches, fetchesBefore, 'refused algorithms never reach the key set')

    const [h, , s] = (await sign(key, userClaims({ scp: 'User.Read' }))).split('.')
    const tampered = `${h}.${b64url(userClaims())}.${s}`
    refused(t, await ask(app, bearer(tampered)), { status: 401, code: 'UNAUTHENTICATED', message: /signature is invalid/, challenge: invalidToken(/signature is invalid/), secret: tampered }, 'tampered payload (scope added)')

    const stranger = await newSigningKey(key.kid)
    const forged = await sign(stranger, userClaims())
    refused(t, await ask(app, bearer(forged)), { status: 401, code: 'UNAUTHENTICATED', message: /signature is invalid/ }, 'signed by another key with a known kid')

    refused(t, await ask(app, bearer('not-a-jwt')), { status: 401, code: 'UNAUTHENTICATED', message: /malformed/, challenge: invalidToken(/malformed/), secret: 'not-a-jwt' }, 'garbage token')
    refused(t, await ask(app, bearer('a.b.c')), { status: 401, code: 'UNAUTHENTICATED', message: /malformed/ }, 'three garbage segments')
    refused(t, await ask(app, bearer(`${header}.not json.`)), { status: 401, code: 'UNAUTHENTICATED' }, 'garbage payload')
  })

  await t.test('missing or unusable Authorization: 401 with a bare Bearer challenge', async t => {
    refused(t, await ask(app), { status: 401, code: 'UNAUTHENTICATED', message: /Credentials are required/, challenge: 'Bearer realm="agrivision"' }, 'no Authorization')
    refused(t, await ask(app, { authorization: 'Basic dXNlcjpwYXNz' }), { status: 401, code: 'UNAUTHENTICATED', message: /must be "Bearer <access token>"/, challenge: 'Bearer realm="agrivision"', secret: 'dXNlcjpwYXNz' }, 'Basic')
    refused(t, await ask(app, { authorization: 'Bearer' }), { status: 401, code: 'UNAUTHENTICATED', challenge: 'Bearer realm="agrivision"' }, 'Bearer without a token')
    const apiKey = newApiKey().key
    refused(t, await ask(app, { 'x-api-key': apiKey }), { status: 401, code: 'UNAUTHENTICATED', challenge: 'Bearer realm="agrivision"', secret: apiKey }, 'an API key where only Entra is configured')

    const upload = await identifyBody(photo)
    const res = await app.inject({ method: 'POST', url: '/graphql', payload: upload.payload, headers: upload.headers })
    t.equal(res.statusCode, 401, 'an upload without credentials is refused')
    t.equal(res.json().errors[0].extensions.code, 'UNAUTHENTICATED')
  })

  await t.test('valid token without the scope or role: 403 FORBIDDEN, insufficient_scope', async t => {
    const scope = `scope="${REQUIRED_ROLE}"`
    refused(t, await ask(app, bearer(await sign(key, userClaims({ scp: 'User.Read' })))), {
      status: 403,
      code: 'FORBIDDEN',
      message: /lacks the delegated permission \(scp\) VehicleIdentification\.Identify/,
      challenge: new RegExp(`^Bearer realm="agrivision", error="insufficient_scope", error_description=".*", ${scope}$`)
    }, 'user token without the scope')
    refused(t, await ask(app, bearer(await sign(key, userClaims({ scp: 'User.Read', roles: ['Something.Else'] })))), {
      status: 403, code: 'FORBIDDEN', challenge: /error="insufficient_scope"/
    }, 'user token with other roles only')
    refused(t, await ask(app, bearer(await sign(key, appClaims({ roles: ['Reports.Read'] })))), {
      status: 403, code: 'FORBIDDEN', message: /app role \(roles\) VehicleIdentification\.Identify/, challenge: /error="insufficient_scope"/
    }, 'app token without the role')
    refused(t, await ask(app, bearer(await sign(key, appClaims({ roles: undefined })))), {
      status: 403, code: 'FORBIDDEN', challenge: /error="insufficient_scope"/
    }, 'app token with no roles at all')
    refused(t, await ask(app, bearer(await sign(key, appClaims({ scp: REQUIRED_ROLE, roles: undefined })))), {
      status: 403, code: 'FORBIDDEN'
    }, 'idtyp app with a scp claim is judged as an app (roles)')
  })
})

t.test('entra: a dashboard app holding only ReadAll gets in, reads history, and may not identify', async t => {
  const jwks = await new JwksServer().start()
  t.teardown(() => jwks.close())
  const key = await jwks.addKey()
  const app = await buildTestApp(t, { env: entraEnv(jwks.uri) })
  const dashboard = bearer(await sign(key, appClaims({ roles: ['VehicleIdentification.ReadAll'] })))
  const history = await ask(app, dashboard, '{ identifications(first: 1) { edges { node { id } } } }')
  t.same([history.statusCode, history.body], [200, { data: { identifications: { edges: [] } } }], 'history with ReadAll only')
  const upload = await identifyBody(photo)
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: upload.payload, headers: { ...upload.headers, ...dashboard } })
  t.equal(res.json().errors?.[0]?.extensions?.code, 'FORBIDDEN', `identifying needs Identify: ${res.payload}`)
  t.match(res.json().errors[0].message, /Identify role/)
})

t.test('entra: ENTRA_REQUIRED_ROLES and several audiences', async t => {
  const jwks = await new JwksServer().start()
  t.teardown(() => jwks.close())
  const key = await jwks.addKey()
  const app = await buildTestApp(t, { env: entraEnv(jwks.uri, { ENTRA_REQUIRED_ROLES: 'Vehicles.Read, Vehicles.All', ENTRA_AUDIENCE: `${AUDIENCE},${CLIENT_APP_ID}` }) })
  ok(t, await ask(app, bearer(await sign(key, userClaims({ scp: 'Vehicles.All', aud: CLIENT_APP_ID })))), 'either scope, either audience')
  ok(t, await ask(app, bearer(await sign(key, appClaims({ roles: ['Vehicles.Read'] })))), 'either role')
  refused(t, await ask(app, bearer(await sign(key, userClaims()))), { status: 403, code: 'FORBIDDEN', challenge: /scope="Vehicles\.Read Vehicles\.All"$/ }, 'the default scope no longer suffices')
})

t.test('entra: the JWKS is refetched for an unknown kid, at most once per cooldown', async t => {
  const jwks = await new JwksServer().start()
  t.teardown(() => jwks.close())
  const key = await jwks.addKey()
  const app = await buildTestApp(t, { env: entraEnv(jwks.uri) })

  ok(t, await ask(app, bearer(await sign(key, userClaims()))), 'a valid token')
  t.equal(jwks.fetches, 1)

  const unpublished = await newSigningKey('not-published-1')
  const unknownKid = { status: 401, code: 'UNAUTHENTICATED', message: /unknown kid/, challenge: invalidToken(/unknown kid/) }
  refused(t, await ask(app, bearer(await sign(unpublished, userClaims()))), unknownKid, 'unknown kid right after a fetch')
  t.equal(jwks.fetches, 1, 'no refetch within the cooldown of the first fetch')

  advanceClock(31_000)
  refused(t, await ask(app, bearer(await sign(unpublished, userClaims()))), unknownKid, 'unknown kid after the cooldown')
  t.equal(jwks.fetches, 2, 'refetched exactly once')
  refused(t, await ask(app, bearer(await sign(await newSigningKey('not-published-2'), userClaims()))), unknownKid, 'another unknown kid')
  t.equal(jwks.fetches, 2, 'no refetch within the cooldown')

  // Key rotation: Entra publishes a new key, then signs with it.
  const next = await jwks.addKey()
  advanceClock(31_000)
  ok(t, await ask(app, bearer(await sign(next, userClaims()))), 'a token signed with a newly published key')
  t.equal(jwks.fetches, 3, 'one refetch found it')
  ok(t, await ask(app, bearer(await sign(key, userClaims()))), 'the old key still works while published')

  jwks.keys = [next] // the old key is withdrawn
  advanceClock(10 * 60_000 + 1000)
  ok(t, await ask(app, bearer(await sign(next, userClaims()))), 'after the 10 min cache age')
  t.equal(jwks.fetches, 4, 'the key set is refreshed once the cache is stale')
  refused(t, await ask(app, bearer(await sign(key, userClaims()))), unknownKid, 'the withdrawn key is refused')
  t.equal(jwks.fetches, 4)
})

t.test('entra: JWKS outage → 503 AUTH_UNAVAILABLE without keys, the known keys with them', async t => {
  const jwks = await new JwksServer().start()
  t.teardown(() => jwks.close())
  const key = await jwks.addKey()
  const app = await buildTestApp(t, { env: entraEnv(jwks.uri, { ENTRA_JWKS_TIMEOUT_MS: '200' }) })
  const token = await sign(key, userClaims())
  const unavailable = { status: 503, code: 'AUTH_UNAVAILABLE', message: /signing keys of Microsoft Entra ID could not be fetched/, challenge: null, secret: token }

  jwks.fault = 'fail'
  const answer = await ask(app, bearer(token))
  refused(t, answer, unavailable, 'JWKS answers 500')
  t.equal(answer.headers['retry-after'], '5', 'Retry-After')
  t.equal(answer.body.errors?.[0]?.extensions.retryAfter, 5, 'extensions.retryAfter')
  t.equal(jwks.fetches, 1)
  refused(t, await ask(app, bearer(token)), unavailable, 'again at once')
  t.equal(jwks.fetches, 1, 'no new fetch during the 5 s back-off')

  jwks.fault = 'hang'
  advanceClock(6000)
  const started = performance.now()
  refused(t, await ask(app, bearer(token)), unavailable, 'JWKS hangs')
  const elapsed = performance.now() - started
  t.ok(elapsed >= 150 && elapsed < 2000, `gave up after ENTRA_JWKS_TIMEOUT_MS (${Math.round(elapsed)} ms)`)
  t.equal(jwks.fetches, 2)

  jwks.fault = 'ok'
  advanceClock(6000)
  ok(t, await ask(app, bearer(token)), 'recovered by itself')
  t.equal(jwks.fetches, 3)

  jwks.fault = 'fail'
  advanceClock(10 * 60_000 + 1000)
  ok(t, await ask(app, bearer(token)), 'stale key set and JWKS down: the keys fetched before are used')
  t.equal(jwks.fetches, 4, 'a refresh was tried')
  ok(t, await ask(app, bearer(token)), 'and again, without trying during the back-off')
  t.equal(jwks.fetches, 4)
  refused(t, await ask(app, bearer(await sign(await newSigningKey(), userClaims()))), { ...unavailable, secret: undefined }, 'an unknown kid cannot be checked now: 503, not 401')
  refused(t, await ask(app, bearer(await sign(key, userClaims({ aud: 'api://other' })))), { status: 401, code: 'UNAUTHENTICATED', message: /wrong audience/ }, 'a bad token is still refused as such')
})

t.test('apikey: SHA-256 hashes, the key id as caller', async t => {
  const dashboard = newApiKey('dashboard')
  const ci = newApiKey('ci')
  const unnamed = newApiKey()
  const revoked = newApiKey('old-dashboard')
  const app = await buildTestApp(t, { env: { AUTH_MODE: 'apikey', API_KEY_HASHES: `${dashboard.entry}, ${ci.entry}\n${unnamed.sha256.toUpperCase()}` } })

  ok(t, await ask(app, { 'x-api-key': dashboard.key }), 'the right key')
  ok(t, await ask(app, { 'x-api-key': ci.key }), 'another configured key')
  ok(t, await ask(app, { 'x-api-key': unnamed.key }), 'a key configured by its bare hash')

  const upload = await identifyBody(photo)
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: upload.payload, headers: { ...upload.headers, 'x-api-key': dashboard.key } })
  t.equal(res.json().data?.identifyVehicle?.backend, 'SIMULATED', 'identifyVehicle with an API key')

  const challenge = 'ApiKey realm="agrivision"'
  const wrong = dashboard.key.slice(0, -2) + (dashboard.key.endsWith('AA') ? 'BB' : 'AA')
  refused(t, await ask(app, { 'x-api-key': wrong }), { status: 401, code: 'UNAUTHENTICATED', message: /API key is not valid/, challenge, secret: wrong }, 'a wrong key')
  refused(t, await ask(app, { 'x-api-key': revoked.key }), { status: 401, code: 'UNAUTHENTICATED', message: /unknown or revoked/, challenge, secret: revoked.key }, 'a revoked key')
  refused(t, await ask(app, { 'x-api-key': dashboard.sha256 }), { status: 401, code: 'UNAUTHENTICATED', challenge }, 'the hash itself is not a key')
  refused(t, await ask(app, { 'x-api-key': '' }), { status: 401, code: 'UNAUTHENTICATED', challenge }, 'an empty key')
  refused(t, await ask(app), { status: 401, code: 'UNAUTHENTICATED', message: /x-api-key/, challenge }, 'no key')
  refused(t, await ask(app, bearer('eyJhbGciOiJSUzI1NiJ9.e30.c2ln')), { status: 401, code: 'UNAUTHENTICATED', message: /not an Authorization header/, challenge }, 'a bearer token where only API keys are configured')
})

t.test('entra,apikey: either credential; Authorization first', async t => {
  const jwks = await new JwksServer().start()
  t.teardown(() => jwks.close())
  const key = await jwks.addKey()
  const dashboard = newApiKey('dashboard')
  const app = await buildTestApp(t, { env: entraEnv(jwks.uri, { AUTH_MODE: 'entra,apikey', API_KEY_HASHES: dashboard.entry }) })

  ok(t, await ask(app, bearer(await sign(key, userClaims()))), 'an Entra token')
  ok(t, await ask(app, { 'x-api-key': dashboard.key }), 'an API key')
  ok(t, await ask(app, { ...bearer(await sign(key, appClaims())), 'x-api-key': 'agv_wrong' }), 'a valid token with a wrong key: the token decides')
  const expired = await sign(key, userClaims({ exp: nowSeconds() - 3600 }))
  refused(t, await ask(app, { ...bearer(expired), 'x-api-key': dashboard.key }), { status: 401, code: 'UNAUTHENTICATED', message: /expired/, challenge: /error="invalid_token"/ },
    'an invalid token with a valid key: the token decides')
  refused(t, await ask(app, { 'x-api-key': 'agv_wrong' }), { status: 401, code: 'UNAUTHENTICATED', challenge: 'ApiKey realm="agrivision"' }, 'a wrong key')
  refused(t, await ask(app), { status: 401, code: 'UNAUTHENTICATED', message: /Bearer .* or an API key/, challenge: 'Bearer realm="agrivision", ApiKey realm="agrivision"' }, 'nothing: both challenges')
})

t.test('none: anonymous', async t => {
  const app = await buildTestApp(t, { env: { AUTH_MODE: 'none' } })
  ok(t, await ask(app), 'no credentials needed')
  ok(t, await ask(app, { authorization: 'Bearer garbage', 'x-api-key': 'whatever' }), 'credentials are ignored')
})

t.test('/health/* is open in every mode', async t => {
  const jwks = await new JwksServer().start()
  t.teardown(() => jwks.close())
  const hashes = newApiKey('probe').entry
  for (const mode of ['none', 'entra', 'apikey', 'entra,apikey']) {
    const app = await buildTestApp(t, { env: entraEnv(jwks.uri, { AUTH_MODE: mode, API_KEY_HASHES: hashes }) })
    for (const url of ['/health/live', '/health/ready']) {
      const res = await app.inject(url)
      t.equal(res.statusCode, 200, `${url} with AUTH_MODE=${mode}`)
    }
  }
  t.equal(jwks.fetches, 0, 'health checks never touch the JWKS')
})

t.test('production refuses AUTH_MODE=none unless ALLOW_ANONYMOUS=true', async t => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), { name: 'ConfigError', message: /ALLOW_ANONYMOUS/ })
  t.throws(() => loadConfig({ NODE_ENV: 'production', AUTH_MODE: 'none' }), ConfigError)
  t.same(loadConfig({ NODE_ENV: 'production', ALLOW_ANONYMOUS: 'true' }).callers.modes, [])
  t.same(loadConfig({ NODE_ENV: 'production', AUTH_MODE: 'apikey', API_KEY_HASHES: newApiKey().entry }).callers.modes, ['apikey'])
})

t.test('logs name the caller, never the token or key', async t => {
  const jwks = await new JwksServer().start()
  t.teardown(() => jwks.close())
  const key = await jwks.addKey()
  const dashboard = newApiKey('dashboard')
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const app = await buildTestApp(t, {
    env: entraEnv(jwks.uri, { AUTH_MODE: 'entra,apikey', API_KEY_HASHES: dashboard.entry }),
    logger: pino({ level: 'info' }, stream)
  })

  const userToken = await sign(key, userClaims())
  const appToken = await sign(key, appClaims())
  const expired = await sign(key, userClaims({ exp: nowSeconds() - 3600 }))
  const forbidden = await sign(key, userClaims({ scp: 'User.Read' }))
  const wrongKey = newApiKey('nobody').key
  const send = async (id: string, headers: Record<string, string>): Promise<void> => {
    const upload = await identifyBody(photo)
    await app.inject({ method: 'POST', url: '/graphql', payload: upload.payload, headers: { ...upload.headers, ...headers, 'x-request-id': id } })
  }
  await send('req-key', { 'x-api-key': dashboard.key })
  await send('req-user', bearer(userToken))
  await send('req-app', bearer(appToken))
  await send('req-expired', bearer(expired))
  await send('req-forbidden', bearer(forbidden))
  await send('req-wrong-key', { 'x-api-key': wrongKey })
  await new Promise(resolve => setImmediate(resolve))

  const all = lines.join('')
  for (const [what, secret] of [['API key', dashboard.key], ['wrong API key', wrongKey], ['user token', userToken], ['app token', appToken], ['expired token', expired], ['forbidden token', forbidden]] as const) {
    t.notOk(all.includes(secret), `the ${what} is not logged`)
    t.notOk(all.includes(secret.split('.')[2] ?? secret), `nor its signature part (${what})`)
  }

  const entries = lines.map(line => JSON.parse(line) as Record<string, unknown>)
  const completed = (reqId: string): Record<string, unknown> | undefined => entries.find(e => e.reqId === reqId && e.msg === 'request completed')
  t.match(completed('req-key'), { caller: 'dashboard', callerKind: 'apikey', res: { statusCode: 200 } }, 'the API key\'s id is the caller')
  t.match(completed('req-user'), { caller: USER_OID, callerKind: 'entra-user', res: { statusCode: 200 } }, 'the user\'s oid is the caller')
  t.match(completed('req-app'), { caller: DAEMON_APP_ID, callerKind: 'entra-app', res: { statusCode: 200 } }, 'the app\'s azp is the caller')
  t.match(completed('req-forbidden'), { caller: USER_OID, res: { statusCode: 403 } }, 'a forbidden caller is named too')
  t.match(completed('req-expired'), { res: { statusCode: 401 } })
  t.notOk(completed('req-expired')?.caller, 'no caller for an unauthenticated request')
  t.match(entries.find(e => e.reqId === 'req-expired' && e.msg === 'caller refused'), { code: 'UNAUTHENTICATED', reason: /expired/ }, 'refusals are logged with their reason')
  t.ok(entries.filter(e => e.reqId === 'req-key' && e.msg !== 'incoming request').every(e => e.caller === 'dashboard'), 'every line after authentication names the caller')
})

t.test('npm run apikey:new', async t => {
  const { stdout } = await run(process.execPath, ['src/cli/new-api-key.ts', 'dashboard'])
  const key = /^key: +(\S+)$/m.exec(stdout)?.[1]
  const hash = /^sha256: +(\S+)$/m.exec(stdout)?.[1]
  const entry = /^(dashboard:[0-9a-f]{64})$/m.exec(stdout)?.[1]
  t.match(key, /^agv_[A-Za-z0-9_-]{43}$/, 'a prefixed key of 32 random bytes, base64url')
  t.equal(hash, createHash('sha256').update(key ?? '').digest('hex'), 'its SHA-256')
  t.equal(entry, `dashboard:${hash}`, 'a ready-to-paste API_KEY_HASHES entry')

  const app = await buildTestApp(t, { env: { AUTH_MODE: 'apikey', API_KEY_HASHES: entry ?? '' } })
  ok(t, await ask(app, { 'x-api-key': key ?? '' }), 'the printed key works with the printed entry')

  const other = await run(process.execPath, ['src/cli/new-api-key.ts'])
  t.match(other.stdout, /^key:[0-9a-f]{64}$/m, 'the name defaults to "key"')
  t.not(/^key: +(\S+)$/m.exec(other.stdout)?.[1], key, 'a new key each time')

  const bad = await run(process.execPath, ['src/cli/new-api-key.ts', 'no spaces:please']).then(() => null, (err: { code: number, stderr: string }) => err)
  t.equal(bad?.code, 2, 'an invalid name exits with 2')
  t.match(bad?.stderr, /invalid name/)
})
