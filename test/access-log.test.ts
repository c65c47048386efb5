// One access line per request ('request completed'), carrying the identification's fields when the request ran one;
// error lines kept; an identification no request line can carry (its request id shared by two requests in flight)
// logged on its own line.
import { Writable } from 'node:stream'
import t from 'tap'
import { pino } from 'pino'
import { buildTestApp, testConfig } from './helper.ts'
import { buildApp } from '../src/app.ts'
import { createSimulatedVision } from '../src/vision/simulated.ts'
import { loggerOptions } from '../src/logger.ts'
import { identifyBody } from './support/multipart.ts'
import { jpeg } from './support/images.ts'

function capturedLog (level = 'info'): { logger: pino.Logger, entries: () => Array<Record<string, any>> } {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  return { logger: pino({ ...loggerOptions({ logLevel: 'info' }), level }, stream), entries: () => lines.join('').split('\n').filter(Boolean).map(l => JSON.parse(l)) }
}

t.test('an identification: one line, the request and the identification together', async t => {
  const log = capturedLog()
  const app = await buildTestApp(t, { logger: log.logger })
  const photo = await jpeg(320, 240)
  const body = await identifyBody(photo, { language: 'en' })
  const res = await app.inject({ method: 'POST', url: '/graphql', headers: { ...body.headers, 'x-request-id': 'req-ok' }, payload: body.payload })
  t.equal(res.statusCode, 200)
  const id = res.json().data.identifyVehicle.id
  await new Promise(resolve => setImmediate(resolve))
  const mine = log.entries().filter(e => e.reqId === 'req-ok')
  t.equal(mine.length, 1, `one line for the request (${mine.map(e => e.msg).join(', ')})`)
  t.match(mine[0], {
    level: 30,
    msg: 'request completed',
    req: { method: 'POST', url: '/graphql', remoteAddress: '127.0.0.1' },
    res: { statusCode: 200 },
    responseTime: Number,
    identification: { id, outcome: 'OK', bytes: photo.length, mime: 'image/jpeg', width: 320, height: 240, backend: 'SIMULATED', vehicles: 1, sha256: /^[0-9a-f]{64}$/ }
  })
  t.notOk(JSON.stringify(mine[0]).includes(photo.subarray(0, 48).toString('base64')), 'no image bytes')

  // Other requests: one line each too, without identification fields.
  await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': 'req-live' } })
  const live = log.entries().filter(e => e.reqId === 'req-live')
  t.equal(live.length, 1)
  t.match(live[0], { msg: 'request completed', req: { method: 'GET', url: '/health/live' }, res: { statusCode: 200 } })
  t.notOk(live[0]?.identification)
})

t.test('a failed identification: its code on the request line', async t => {
  const log = capturedLog()
  const app = await buildTestApp(t, { logger: log.logger })
  const body = await identifyBody(Buffer.from('not an image at all, just text'))
  const res = await app.inject({ method: 'POST', url: '/graphql', headers: { ...body.headers, 'x-request-id': 'req-bad' }, payload: body.payload })
  t.equal(res.json().errors[0].extensions.code, 'BAD_USER_INPUT')
  await new Promise(resolve => setImmediate(resolve))
  const mine = log.entries().filter(e => e.reqId === 'req-bad' && e.msg === 'request completed')
  t.equal(mine.length, 1)
  t.match(mine[0]?.identification, { outcome: 'BAD_USER_INPUT', code: 'BAD_USER_INPUT', bytes: 30 })
})

t.test('two requests in flight with one request id: each identification on a line of its own, none on the wrong request', async t => {
  const log = capturedLog()
  const app = await buildTestApp(t, { logger: log.logger })
  const [a, b] = await Promise.all([identifyBody(await jpeg(64, 48)), identifyBody(await jpeg(96, 64))])
  const send = (body: Awaited<ReturnType<typeof identifyBody>>) =>
    app.inject({ method: 'POST', url: '/graphql', headers: { ...body.headers, 'x-request-id': 'req-twice' }, payload: body.payload })
  const results = await Promise.all([send(a), send(b)])
  for (const res of results) t.equal(res.statusCode, 200)
  await new Promise(resolve => setImmediate(resolve))
  const entries = log.entries().filter(e => e.reqId === 'req-twice')
  const own = entries.filter(e => e.msg === 'identification done')
  const onRequests = entries.filter(e => e.msg === 'request completed' && e.identification !== undefined)
  t.equal(own.length + onRequests.length, 2, 'both identifications logged once')
  t.ok(own.length >= 1, 'the shared id puts at least one on its own line')
  for (const e of onRequests) t.ok(e.identification, 'a request line carries an identification only if it is its own')
  t.same(new Set([...own, ...onRequests].map(e => e.identification.width)), new Set([64, 96]))
})

t.test('at warn: no line for a request that went well, errors still logged', async t => {
  const log = capturedLog('warn')
  const app = await buildApp({ config: testConfig(), vision: createSimulatedVision(), logger: log.logger })
  t.teardown(() => app.close())
  app.get('/boom', async () => { throw new Error('kaput') })
  await app.ready()
  const body = await identifyBody(await jpeg(64, 48))
  await app.inject({ method: 'POST', url: '/graphql', headers: body.headers, payload: body.payload })
  await app.inject({ method: 'GET', url: '/boom', headers: { 'x-request-id': 'req-boom' } })
  await new Promise(resolve => setImmediate(resolve))
  const entries = log.entries()
  t.notOk(entries.some(e => e.msg === 'request completed'), 'no access line at warn')
  t.match(entries.find(e => e.reqId === 'req-boom' && e.level >= 50), { err: { message: 'kaput' } }, 'the error is logged')
})

t.test('credentials in headers never reach a line: a request\'s (none kept) or a logged `headers` object (redacted)', async t => {
  const log = capturedLog()
  const secrets = { authorization: 'Bearer s3cret-bearer', 'x-api-key': 'agv_s3cretkey', 'x-identity-header': 's3cret-identity', cookie: 's3cret=cookie', 'api-key': 's3cret-azure' }
  const headers = { ...secrets, 'content-type': 'application/json' }
  log.logger.info({ headers }, 'headers logged')
  log.logger.info({ req: { method: 'GET', url: '/x', headers, socket: { remotePort: 1 } } }, 'a request logged')
  const app = await buildTestApp(t, { logger: log.logger })
  await app.inject({ method: 'GET', url: '/health/live', headers: { ...secrets, 'x-request-id': 'req-secrets' } })
  await new Promise(resolve => setImmediate(resolve))
  const all = JSON.stringify(log.entries())
  t.notMatch(all, /s3cret/, 'no secret value anywhere')
  const logged = log.entries().find(e => e.msg === 'headers logged')
  t.same(logged?.headers, { authorization: '[redacted]', 'x-api-key': '[redacted]', 'x-identity-header': '[redacted]', cookie: '[redacted]', 'api-key': '[redacted]', 'content-type': 'application/json' })
  t.notOk('headers' in (log.entries().find(e => e.msg === 'a request logged')?.req ?? {}), 'a request\'s headers are not kept')
  t.ok(log.entries().some(e => e.reqId === 'req-secrets'), 'the request was logged')
})
