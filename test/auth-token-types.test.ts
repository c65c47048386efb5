// Entra ID: app-only, delegated and ID tokens told apart by the claims Entra defines (security review,
// issue 7, item B). All tokens here are validly signed by the tenant's key, for this API's audience and
// issuer: only their kind decides. An ID token (even one with `roles` and the API as audience) used to
// pass as an app token.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { JWTPayload } from 'jose'
import { buildTestApp } from './helper.ts'
import {
  AUDIENCE, CLIENT_APP_ID, DAEMON_APP_ID, REQUIRED_ROLE, TENANT_ID, USER_OID,
  JwksServer, appClaims, nowSeconds, sign, userClaims, v1Issuer, v2Issuer
} from './support/jwks.ts'
import { tokenKind } from '../src/callers/entra.ts'

const jwks = await new JwksServer().start()
t.teardown(() => jwks.close())
const key = await jwks.addKey()
const app: FastifyInstance = await buildTestApp(t, {
  env: { AUTH_MODE: 'entra', ENTRA_TENANT_ID: TENANT_ID, ENTRA_AUDIENCE: `${AUDIENCE},${CLIENT_APP_ID}`, ENTRA_JWKS_URI: jwks.uri }
})

async function ask (token: string) {
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ vision { backend } }' }, headers: { authorization: `Bearer ${token}` } })
  return { status: res.statusCode, body: res.json(), raw: res.payload, challenge: res.headers['www-authenticate'] as string | undefined }
}

/**
 * An ID token as Entra issues it to a client that signs a user in: for the client (here: this API's own
 * client id), with nonce and roles.
 */
function idTokenClaims (overrides: JWTPayload = {}): JWTPayload {
  const now = nowSeconds()
  return {
    aud: CLIENT_APP_ID,
    iss: v2Issuer(),
    iat: now - 30,
    nbf: now - 30,
    exp: now + 3600,
    tid: TENANT_ID,
    ver: '2.0',
    oid: USER_OID,
    sub: 'pairwise-subject-for-this-client',
    name: 'Test Farmer',
    preferred_username: 'farmer@example.com',
    nonce: 'a-nonce-from-the-sign-in',
    roles: [REQUIRED_ROLE],
    ...overrides
  }
}

const SP_OID = '99999999-0000-0000-0000-0000000000ff'

t.test('accepted: app-only and delegated access tokens', async t => {
  const accepted: Array<[string, JWTPayload, string]> = [
    ['app token with idtyp "app"', appClaims(), 'entra-app'],
    ['app token without idtyp, oid = sub (v2)', appClaims({ idtyp: undefined }), 'entra-app'],
    ['app token without idtyp, oid = sub in another case (v1, appid)', appClaims({ idtyp: undefined, ver: '1.0', iss: v1Issuer(), aud: AUDIENCE, azp: undefined, appid: DAEMON_APP_ID, oid: SP_OID, sub: SP_OID.toUpperCase() }), 'entra-app'],
    ['user token with scp', userClaims(), 'entra-user'],
    ['user token with scp and idtyp "user"', userClaims({ idtyp: 'user' }), 'entra-user']
  ]
  for (const [what, claims] of accepted) {
    const answer = await ask(await sign(key, claims))
    t.same([answer.status, answer.body], [200, { data: { vision: { backend: 'SIMULATED' } } }], what)
  }
  for (const [what, claims, kind] of accepted) t.equal(tokenKind(claims) === 'app' ? 'entra-app' : 'entra-user', kind, `${what}: ${kind}`)
})

t.test('refused with 401 UNAUTHENTICATED: ID tokens and tokens of no known kind', async t => {
  const refused: Array<[string, JWTPayload, RegExp]> = [
    ['ID token: nonce, roles, audience = the API\'s client id', idTokenClaims(), /is an ID token/],
    ['ID token with the App ID URI as audience', idTokenClaims({ aud: AUDIENCE }), /is an ID token/],
    ['ID token whose oid equals sub (still has a nonce)', idTokenClaims({ sub: USER_OID }), /is an ID token/],
    ['ID token with at_hash and no nonce', idTokenClaims({ nonce: undefined, at_hash: 'aGFzaA' }), /is an ID token/],
    ['ID token with c_hash and no nonce', idTokenClaims({ nonce: undefined, c_hash: 'aGFzaA' }), /is an ID token/],
    ['ID token without nonce or hashes (roles, pairwise sub)', idTokenClaims({ nonce: undefined }), /neither a delegated access token .* nor an app-only one/],
    ['app-looking token with a nonce', appClaims({ nonce: 'n' }), /is an ID token/],
    ['user token missing scp (idtyp "user", roles)', userClaims({ scp: undefined, idtyp: 'user', roles: [REQUIRED_ROLE] }), /neither a delegated/],
    ['user token missing scp (no idtyp, roles)', userClaims({ scp: undefined, roles: [REQUIRED_ROLE] }), /neither a delegated/],
    ['no scp, no idtyp, no oid (sub only)', appClaims({ idtyp: undefined, oid: undefined }), /neither a delegated/],
    ['no scp, idtyp of an unknown kind', appClaims({ idtyp: 'device' }), /neither a delegated/],
    ['scp that is not a string, oid = sub', appClaims({ idtyp: undefined, scp: [REQUIRED_ROLE] }), /neither a delegated/],
    ['idtyp "user" with a scp but an unknown idtyp case', userClaims({ idtyp: 'User' }), /neither a delegated/]
  ]
  for (const [what, claims, message] of refused) {
    const token = await sign(key, claims)
    const answer = await ask(token)
    t.test(what, async t => {
      t.equal(answer.status, 401, 'HTTP 401')
      t.equal(answer.body.data, null)
      t.equal(answer.body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED')
      t.match(answer.body.errors?.[0]?.message, message, 'a clear message')
      t.match(answer.challenge, /^Bearer realm="agrivision", error="invalid_token", error_description="/, 'invalid_token challenge')
      t.notOk(answer.raw.includes(token) || (answer.challenge ?? '').includes(token), 'the token is not echoed')
      t.notOk(answer.raw.includes('farmer@example.com'), 'nor its claims')
    })
  }
})

t.test('a delegated token with other scopes is still 403 (authorization, not authentication)', async t => {
  const answer = await ask(await sign(key, userClaims({ scp: 'User.Read' })))
  t.equal(answer.status, 403)
  t.equal(answer.body.errors?.[0]?.extensions?.code, 'FORBIDDEN')
})
