// Credentials in the query string (security review, issue 7, item C): never accepted (refused with
// 400 BAD_REQUEST, in every mode and whatever the headers say), and no query value reaches the log:
// the log lines are captured through the production logger options (src/logger.ts) into a stream.
import { Writable } from 'node:stream'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { buildTestApp, testConfig } from './helper.ts'
import { JwksServer, AUDIENCE, TENANT_ID, sign, userClaims } from './support/jwks.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import { loggerOptions, redactUrl } from '../src/logger.ts'

const dashboard = newApiKey('dashboard')
const jwks = await new JwksServer().start()
t.teardown(() => jwks.close())
const key = await jwks.addKey()
const jwt = await sign(key, userClaims())

const lines: string[] = []
const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
const logger = pino({ ...loggerOptions(testConfig({ LOG_LEVEL: 'info' }).server), level: 'info' }, stream)

async function appFor (mode: string): Promise<FastifyInstance> {
  const app = await buildTestApp(t, {
    env: {
      AUTH_MODE: mode, API_KEY_HASHES: dashboard.entry, ENTRA_TENANT_ID: TENANT_ID, ENTRA_AUDIENCE: AUDIENCE, ENTRA_JWKS_URI: jwks.uri
    },
    logger
  })
  return app
}

const QUERY = '{ vision { backend } }'
const post = (app: FastifyInstance, url: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, payload: { query: QUERY }, headers })
const get = (app: FastifyInstance, params: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'GET', url: `/graphql?query=${encodeURIComponent(QUERY)}&${params}`, headers: { 'graphql-require-preflight': '1', ...headers } })

const NAMES = ['api_key', 'x-api-key', 'apikey', 'X-API-KEY', 'apiKey', 'key', 'access_token', 'token', 'id_token', 'refresh_token',
  'code', 'client_secret', 'secret', 'password', 'authorization', 'Authorization', 'auth', 'sig', 'subscription-key', 'sas_token']

const apikeyApp = await appFor('apikey')
const bothApp = await appFor('entra,apikey')
const openApp = await appFor('none')

t.test('control: the key works in its header, and a plain GET query is fine', async t => {
  t.equal((await post(apikeyApp, '/graphql', { 'x-api-key': dashboard.key })).json().data?.vision?.backend, 'SIMULATED')
  t.equal((await get(apikeyApp, 'debug=1', { 'x-api-key': dashboard.key })).json().data?.vision?.backend, 'SIMULATED')
})

t.test('a credential in the query string is not accepted, whatever the parameter name: 400 BAD_REQUEST', async t => {
  for (const name of NAMES) {
    const alone = await post(apikeyApp, `/graphql?${encodeURIComponent(name)}=${dashboard.key}`)
    t.equal(alone.statusCode, 400, `POST ?${name}= alone: refused, not accepted`)
    const error = alone.json().errors?.[0]
    t.equal(error?.extensions?.code, 'BAD_REQUEST', `?${name}=: BAD_REQUEST`)
    t.match(error?.message, /not accepted in the URL/, 'says why')
    t.notOk(alone.payload.includes(dashboard.key), 'the key is not echoed')

    const withHeader = await post(apikeyApp, `/graphql?${encodeURIComponent(name)}=${dashboard.key}`, { 'x-api-key': dashboard.key })
    t.equal(withHeader.statusCode, 400, `?${name}= with a valid header key: still refused`)
    t.match(withHeader.json().errors?.[0]?.message, /not accepted in the URL/)
  }
})

t.test('every mode, both methods, any value shape', async t => {
  const cases: Array<[string, FastifyInstance, () => Promise<{ statusCode: number, json: () => any }>]> = [
    ['entra,apikey: ?access_token=<jwt> with a valid bearer', bothApp, () => post(bothApp, `/graphql?access_token=${jwt}`, { authorization: `Bearer ${jwt}` })],
    ['entra,apikey: GET ?token=<jwt>', bothApp, () => get(bothApp, `token=${jwt}`, { authorization: `Bearer ${jwt}` })],
    ['none: GET ?api_key=<key> (anonymous mode refuses it too)', openApp, () => get(openApp, `api_key=${dashboard.key}`)],
    ['none: POST ?code=xyz', openApp, () => post(openApp, '/graphql?code=xyz')],
    ['apikey: an API-key-shaped value under an innocent name', apikeyApp, () => post(apikeyApp, `/graphql?q=${dashboard.key}`, { 'x-api-key': dashboard.key })],
    ['apikey: a JWT inside GET variables', apikeyApp, () => get(apikeyApp, `variables=${encodeURIComponent(JSON.stringify({ x: jwt }))}`, { 'x-api-key': dashboard.key })],
    ['apikey: a key as a bare parameter name', apikeyApp, () => post(apikeyApp, `/graphql?${dashboard.key}`, { 'x-api-key': dashboard.key })],
    ['apikey: repeated and percent-encoded name', apikeyApp, () => post(apikeyApp, `/graphql?a=1&%61pi%5Fkey=${dashboard.key}&a=2`, { 'x-api-key': dashboard.key })]
  ]
  for (const [what, , send] of cases) {
    const res = await send()
    t.equal(res.statusCode, 400, what)
    t.equal(res.json().errors?.[0]?.extensions?.code, 'BAD_REQUEST', what)
    t.match(res.json().errors?.[0]?.message, /not accepted in the URL/, `${what}: for this reason`)
  }
})

t.test('no query value is logged: request lines, not-found messages, other routes', async t => {
  const marker = 'req-query-secret'
  await post(apikeyApp, `/graphql?api_key=${dashboard.key}&other=plain-value`, { 'x-request-id': marker })
  await get(bothApp, `access_token=${jwt}`, { 'x-request-id': `${marker}-2` })
  await apikeyApp.inject({ method: 'GET', url: `/nowhere?token=${dashboard.key}`, headers: { 'x-request-id': `${marker}-3` } })
  await apikeyApp.inject({ method: 'GET', url: `/health/ready?code=${dashboard.key}`, headers: { 'x-request-id': `${marker}-4` } })
  await apikeyApp.inject({ method: 'GET', url: `/graphiql?${dashboard.key}`, headers: { 'x-request-id': `${marker}-5` } })
  await new Promise(resolve => setImmediate(resolve))

  const all = lines.join('')
  t.ok(lines.length > 10, `log lines captured (${lines.length})`)
  t.notOk(all.includes(dashboard.key), 'the API key never appears in the log')
  t.notOk(all.includes(dashboard.key.slice(4, 24)), 'nor a piece of it')
  t.notOk(all.includes(jwt), 'the JWT never appears in the log')
  t.notOk(all.includes(jwt.split('.')[2] as string), 'nor its signature')
  t.notOk(all.includes('plain-value'), 'no query value at all, even a harmless one')

  const entries = lines.map(line => JSON.parse(line) as Record<string, any>)
  // One access line per request (no 'incoming request' line): the request as it came, at its end.
  const incoming = entries.find(e => e.reqId === marker && e.msg === 'request completed')
  t.equal(incoming?.req?.url, '/graphql?api_key=[redacted]&other=[redacted]', 'the request line keeps the names, not the values')
  t.match(incoming?.req, { method: 'POST', remoteAddress: '127.0.0.1' }, 'and the rest of the request line')
  t.match(entries.find(e => e.reqId === marker && e.msg === 'caller refused'), { code: 'BAD_REQUEST', reason: /not accepted in the URL \(the query parameter "api_key"\)/ }, 'the refusal is logged')
  t.match(entries.find(e => e.reqId === `${marker}-3` && /not found/.test(e.msg))?.msg, /^Route GET:\/nowhere\?token=\[redacted\] not found$/, 'Fastify\'s not-found message is redacted')
  t.equal(entries.find(e => e.reqId === `${marker}-4` && e.msg === 'request completed')?.req?.url, '/health/ready?code=[redacted]')
  t.equal(entries.find(e => e.reqId === `${marker}-5` && e.msg === 'request completed')?.req?.url, '/graphiql?[redacted]', 'a bare secret as a parameter name')
  t.notOk(entries.some(e => e.msg === 'incoming request'), 'no second line per request')
})

t.test('redactUrl', async t => {
  t.equal(redactUrl('/graphql'), '/graphql')
  t.equal(redactUrl('/graphql?'), '/graphql?')
  t.equal(redactUrl('/graphql?query=%7B%7D&operationName=X'), '/graphql?query=[redacted]&operationName=[redacted]')
  t.equal(redactUrl('/a?flag&x=1#frag'), '/a?flag&x=[redacted]')
  t.equal(redactUrl(`/a?${'n'.repeat(60)}=1`), '/a?[redacted]=[redacted]', 'a long name may be a secret')
})
