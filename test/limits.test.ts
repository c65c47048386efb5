// Abuse limits and overload control: rate limit, GraphQL rules, security headers, CORS, admission, pressure, metrics.
import t from 'tap'
import { connect } from 'node:net'
import { getIntrospectionQuery } from 'graphql'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { buildTestApp } from './helper.ts'
import { encodeParts, identifyBody, identifyParts } from './support/multipart.ts'
import * as images from './support/images.ts'
import { createSimulatedVision } from '../src/vision/simulated.ts'

const photo = await images.jpeg(48, 32)

async function identify (app: FastifyInstance, headers: Record<string, string> = {}) {
  const body = await identifyBody(photo)
  return await app.inject({ method: 'POST', url: '/graphql', payload: body.payload, headers: { ...body.headers, ...headers } })
}

async function query (app: FastifyInstance, payload: unknown) {
  return await app.inject({ method: 'POST', url: '/graphql', payload: payload as object })
}

t.test('rate limit per caller on identifications: 429 RATE_LIMITED with retryAfter and the standard headers', async t => {
  const app = await buildTestApp(t, { env: { RATE_LIMIT_PER_MINUTE: '3' } })
  for (let i = 0; i < 3; i++) {
    const ok = await identify(app)
    t.equal(ok.statusCode, 200)
    t.equal(ok.headers['x-ratelimit-limit'], '3')
    t.equal(ok.headers['x-ratelimit-remaining'], String(2 - i))
  }
  const limited = await identify(app)
  t.equal(limited.statusCode, 429)
  const error = limited.json().errors[0]
  t.equal(error.extensions.code, 'RATE_LIMITED')
  t.ok(error.extensions.retryAfter >= 1 && error.extensions.retryAfter <= 60, `retryAfter ${error.extensions.retryAfter}`)
  t.ok(Number(limited.headers['retry-after']) >= 1, 'Retry-After header')
  t.equal(limited.headers['x-ratelimit-remaining'], '0')

  const other = await identify(app, {}) // same IP: same bucket
  t.equal(other.statusCode, 429)
  const fromElsewhere = await app.inject({ method: 'POST', url: '/graphql', remoteAddress: '10.1.2.3', ...(await identifyBody(photo)) })
  t.equal(fromElsewhere.statusCode, 200, 'another caller has its own budget')
  t.equal((await query(app, { query: '{ vision { ready } }' })).statusCode, 200, 'queries are not counted')
})

t.test('GraphQL rules: depth, batching, one identification per operation, introspection switch', async t => {
  const app = await buildTestApp(t)

  const introspection = await query(app, { query: getIntrospectionQuery() })
  t.equal(introspection.statusCode, 200, 'GraphiQL\'s introspection query passes the depth limit')
  t.ok(introspection.json().data.__schema)

  let deep = 'name'
  for (let i = 0; i < 20; i++) deep = `ofType { ${deep} }`
  const tooDeep = await query(app, { query: `{ __schema { types { fields { type { ${deep} } } } } }` })
  t.equal(tooDeep.statusCode, 400)
  t.equal(tooDeep.json().errors[0].extensions.code, 'GRAPHQL_VALIDATION_FAILED')

  const batch = await query(app, [{ query: '{ vision { ready } }' }, { query: '{ vision { ready } }' }])
  t.equal(batch.statusCode, 400)
  t.equal(batch.json().errors[0].extensions.code, 'BAD_REQUEST')

  const twice = await encodeParts([
    ['operations', JSON.stringify({ query: 'mutation($image: Upload!) { a: identifyVehicle(image: $image) { id } b: identifyVehicle(image: $image) { id } }', variables: { image: null } })],
    ['map', JSON.stringify({ 0: ['variables.image'] })],
    ['0', photo, 'a.jpg', 'image/jpeg']
  ])
  const two = await app.inject({ method: 'POST', url: '/graphql', ...twice })
  t.equal(two.statusCode, 400)
  t.equal(two.json().errors[0].extensions.code, 'GRAPHQL_VALIDATION_FAILED')
  t.match(two.json().errors[0].message, /At most 1 identifyVehicle/)

  // Spread through fragments around another operation: still counted.
  const viaFragments = await encodeParts([
    ['operations', JSON.stringify({
      query: 'fragment A on Mutation { a: identifyVehicle(image: $i) { id } } mutation M1 { __typename } ' +
        'fragment B on Mutation { b: identifyVehicle(image: $i) { id } } mutation M2($i: Upload!) { ...A ...B ...C } ' +
        'fragment C on Mutation { c: identifyVehicle(image: $i) { id } }',
      operationName: 'M2',
      variables: { i: null }
    })],
    ['map', JSON.stringify({ 0: ['variables.i'] })],
    ['0', photo, 'a.jpg', 'image/jpeg']
  ])
  const three = await app.inject({ method: 'POST', url: '/graphql', ...viaFragments })
  t.equal(three.statusCode, 400)
  t.equal(three.json().errors[0].extensions.code, 'GRAPHQL_VALIDATION_FAILED')
  t.match(three.json().errors[0].message, /asks for 3/)

  const closed = await buildTestApp(t, { env: { GRAPHQL_INTROSPECTION: 'false' } })
  const refused = await query(closed, { query: '{ __schema { types { name } } }' })
  t.equal(refused.json().errors[0].extensions.code, 'GRAPHQL_VALIDATION_FAILED')
  t.equal((await query(closed, { query: '{ vision { ready } }' })).json().data.vision.ready, true)
})

t.test('security headers and a CSP under which the self-hosted GraphiQL works', async t => {
  const app = await buildTestApp(t)
  const page = await app.inject('/graphiql')
  t.match(page.headers['content-security-policy'], /script-src 'self'/)
  t.notMatch(page.headers['content-security-policy'], /unsafe-eval/)
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.equal(page.headers['x-frame-options'], 'SAMEORIGIN')

  const api = await identify(app)
  t.equal(api.headers['x-content-type-options'], 'nosniff', 'JSON answers are never sniffed as HTML')
  t.equal(api.headers['cache-control'], 'no-store', 'nor cached')
  t.notOk(api.headers['content-security-policy'], 'no document headers on JSON answers')
})

t.test('CORS: the configured origins, with the headers upload clients send', async t => {
  const app = await buildTestApp(t, { env: { CORS_ORIGINS: 'https://dashboard.example.com' } })
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/graphql',
    headers: { origin: 'https://dashboard.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'apollo-require-preflight, x-api-key, authorization' }
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], 'https://dashboard.example.com')
  for (const header of ['apollo-require-preflight', 'x-api-key', 'authorization', 'graphql-require-preflight']) {
    t.match(preflight.headers['access-control-allow-headers'], header)
  }
  const stranger = await app.inject({ method: 'OPTIONS', url: '/graphql', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } })
  t.notOk(stranger.headers['access-control-allow-origin'], 'other origins get no CORS grant')

  const production = await buildTestApp(t, { env: { NODE_ENV: 'production', ALLOW_ANONYMOUS: 'true' } })
  const none = await production.inject({ method: 'OPTIONS', url: '/graphql', headers: { origin: 'https://dashboard.example.com', 'access-control-request-method': 'POST' } })
  t.notOk(none.headers['access-control-allow-origin'], 'production default: no cross-origin access')
})

t.test('overload: a bounded queue, then 503 OVERLOADED at once with retryAfter', async t => {
  const app = await buildTestApp(t, {
    vision: createSimulatedVision({ latencyMs: 400 }),
    env: { VISION_MAX_CONCURRENCY: '2', VISION_QUEUE_SIZE: '1', VISION_QUEUE_TIMEOUT_MS: '5000' }
  })
  const started = performance.now()
  const responses = await Promise.all([identify(app), identify(app), identify(app), identify(app), identify(app)])
  const codes = responses.map(res => res.statusCode).sort()
  t.same(codes, [200, 200, 200, 503, 503], '2 running + 1 queued served, the rest refused')
  for (const refused of responses.filter(res => res.statusCode === 503)) {
    t.equal(refused.json().errors[0].extensions.code, 'OVERLOADED')
    t.ok(refused.json().errors[0].extensions.retryAfter >= 1)
    t.ok(Number(refused.headers['retry-after']) >= 1)
  }
  t.ok(performance.now() - started < 2000)
})

t.test('overload: the queue wait is bounded by VISION_QUEUE_TIMEOUT_MS', async t => {
  const app = await buildTestApp(t, {
    vision: createSimulatedVision({ latencyMs: 1500 }),
    env: { VISION_MAX_CONCURRENCY: '1', VISION_QUEUE_SIZE: '5', VISION_QUEUE_TIMEOUT_MS: '200' }
  })
  const first = identify(app)
  await new Promise(resolve => setTimeout(resolve, 50))
  const started = performance.now()
  const waited = await identify(app)
  t.equal(waited.statusCode, 503)
  t.equal(waited.json().errors[0].extensions.code, 'OVERLOADED')
  t.ok(performance.now() - started < 1000, 'refused after the queue timeout, not after the running call')
  t.equal((await first).statusCode, 200)
})

t.test('overload: an upload is read without a slot; the slot is taken for the work, and refused then when none is free', async t => {
  const app = await buildTestApp(t, {
    vision: createSimulatedVision({ latencyMs: 1000 }),
    env: { VISION_MAX_CONCURRENCY: '1', VISION_QUEUE_SIZE: '0' }
  })
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  const busy = fetch(`${address}/graphql`, { method: 'POST', ...(await asFetch(await identifyBody(photo))) })
  await new Promise(resolve => setTimeout(resolve, 100))

  // Declare a 5 MB upload, send only the head of it: it holds no slot, so it is not refused for one...
  const { port } = new URL(address)
  const socket = connect(Number(port), '127.0.0.1')
  t.teardown(() => socket.destroy())
  let answer = ''
  socket.on('data', chunk => { answer += chunk.toString('latin1') })
  const body = await encodeParts(identifyParts(Buffer.alloc(5 * 1024 * 1024, 1)))
  socket.write(`POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: ${body.headers['content-type']}\r\ngraphql-require-preflight: 1\r\ncontent-length: ${body.payload.length}\r\n\r\n`)
  socket.write(body.payload.subarray(0, 64 * 1024))
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(answer, '', 'a half-sent upload is neither answered nor refused while a slot is busy')
  // ...while a complete one that finds the only slot busy (and no queue) is refused with 503.
  const refused = await identify(app)
  t.equal(refused.statusCode, 503)
  t.equal(refused.json().errors[0].extensions.code, 'OVERLOADED')
  t.ok(Number(refused.headers['retry-after']) >= 1, 'Retry-After')
  t.equal((await busy).status, 200)
})

t.test('under pressure: /health/ready 503, identifications refused, everything else served', async t => {
  const app = await buildTestApp(t, { env: { PRESSURE_MAX_HEAP_USED_BYTES: '1' } })
  const deadline = Date.now() + 5000
  while (!app.isUnderPressure() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(app.isUnderPressure())
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().reason, 'under pressure')
  t.equal((await app.inject('/health/live')).statusCode, 200)
  const refused = await identify(app)
  t.equal(refused.statusCode, 503)
  t.equal(refused.json().errors[0].extensions.code, 'OVERLOADED')
  const status = await query(app, { query: '{ vision { ready } }' })
  t.equal(status.statusCode, 200)
  t.equal(status.json().data.vision.ready, false, '`vision { ready }` agrees with /health/ready')
})

t.test('TRUST_PROXY: a hop count or the proxies\' addresses; a forged X-Forwarded-For does not reset a budget', async t => {
  const shapes: Record<string, { env: string, from: string }> = {
    'one hop': { env: '1', from: '10.0.0.1' },
    'the proxy by address': { env: '10.0.0.1', from: '10.0.0.1' },
    'the proxies by CIDR': { env: '10.0.0.0/8, 192.168.0.0/16', from: '10.0.0.1' }
  }
  for (const [shape, { env, from }] of Object.entries(shapes)) {
    const app = await buildTestApp(t, { env: { TRUST_PROXY: env, GRAPHQL_RATE_LIMIT_PER_MINUTE: '2' } })
    const send = (forwarded: string) => app.inject({
      method: 'POST', url: '/graphql', remoteAddress: from, payload: { query: '{ vision { ready } }' }, headers: { 'x-forwarded-for': forwarded }
    })
    // The client is the address the trusted proxy saw; whatever the client itself wrote before it is not believed.
    const statuses = []
    for (const forged of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) statuses.push((await send(`${forged}, 203.0.113.7`)).statusCode)
    t.same(statuses, [200, 200, 429], `${shape}: one budget for 203.0.113.7 whatever it forges`)
    t.equal((await send('198.51.100.9')).statusCode, 200, `${shape}: another client behind the same proxy has its own`)
  }

  const direct = await buildTestApp(t, { env: { TRUST_PROXY: '10.0.0.1', GRAPHQL_RATE_LIMIT_PER_MINUTE: '1' } })
  const fromElsewhere = (forwarded: string) => direct.inject({
    method: 'POST', url: '/graphql', remoteAddress: '203.0.113.50', payload: { query: '{ vision { ready } }' }, headers: { 'x-forwarded-for': forwarded }
  })
  t.equal((await fromElsewhere('1.1.1.1')).statusCode, 200)
  t.equal((await fromElsewhere('2.2.2.2')).statusCode, 429, 'an untrusted peer\'s X-Forwarded-For is ignored')
})

t.test('TRUST_PROXY=true is accepted with a warning at start-up', async t => {
  const lines: string[] = []
  await buildTestApp(t, { env: { TRUST_PROXY: 'true' }, logger: pino({ level: 'warn' }, { write: (line: string) => { lines.push(line) } }) })
  t.ok(lines.some(line => /TRUST_PROXY=true believes any X-Forwarded-For/.test(line)))
})

t.test('metrics: Prometheus format, optionally behind METRICS_TOKEN', async t => {
  const app = await buildTestApp(t, { env: { METRICS_TOKEN: 'a-metrics-token-of-length' } })
  await identify(app)
  await app.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(images.text)) })
  t.equal((await app.inject('/metrics')).statusCode, 401)
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: 'Bearer wrong' } })).statusCode, 401)
  const res = await app.inject({ url: '/metrics', headers: { authorization: 'Bearer a-metrics-token-of-length' } })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /text\/plain/)
  const text = res.body
  t.match(text, /agrivision_identifications_total\{outcome="OK",backend="SIMULATED"\} 1/)
  t.match(text, /agrivision_identifications_total\{outcome="BAD_USER_INPUT",backend="SIMULATED"\} 1/)
  t.match(text, new RegExp(`agrivision_image_bytes_total\\{direction="received"\\} ${photo.length + images.text.length}`))
  t.match(text, /agrivision_http_requests_total\{route="\/graphql",method="POST",status="200"\} 2/)
  t.match(text, /agrivision_upstream_duration_seconds_bucket/)
  t.match(text, /agrivision_admission_queued 0/)
  t.match(text, /agrivision_token_fetches_total 0/)
  t.match(text, /process_resident_memory_bytes/)
})

async function asFetch (body: { payload: Buffer, headers: Record<string, string> }) {
  return { headers: body.headers, body: new Uint8Array(body.payload) }
}
