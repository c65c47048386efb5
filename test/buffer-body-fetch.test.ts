// The openai client's fetch for pre-encoded bodies (src/vision/buffer-body-fetch.ts): the bytes arrive as they were,
// the response reads like fetch's, and every failure is a rejected promise (never an exception out of the event loop).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createHash, randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { bufferBodyFetch, MAX_RESPONSE_BYTES, ResponseTooLargeError } from '../src/vision/buffer-body-fetch.ts'

type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void

async function server (t: Test, handler: Handler): Promise<string> {
  const s = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => handler(req, Buffer.concat(chunks), res))
  })
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { s.closeAllConnections(); s.close() })
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`
}

t.test('a Buffer body arrives byte for byte, with the headers; the response reads like fetch\'s', async t => {
  const origin = await server(t, (req, body, res) => {
    res.setHeader('x-seen', `${req.method} ${req.url} ${req.headers['content-type']} ${req.headers.authorization}`)
    res.setHeader('set-cookie', ['a=1', 'b=2'])
    res.end(JSON.stringify({ sha256: createHash('sha256').update(body).digest('hex'), length: body.length }))
  })
  const body = randomBytes(300_000)
  const fetch = bufferBodyFetch(async () => { throw new Error('not for a Buffer body') })
  const response = await fetch(`${origin}/openai/v1/chat/completions?x=1`, {
    method: 'POST', body, headers: new Headers({ 'content-type': 'application/json', authorization: 'Bearer abc' })
  })
  t.equal(response.status, 200)
  t.equal(response.ok, true)
  t.equal(response.headers.get('x-seen'), 'POST /openai/v1/chat/completions?x=1 application/json Bearer abc')
  t.same(response.headers.getSetCookie(), ['a=1', 'b=2'])
  t.same(await response.json(), { sha256: createHash('sha256').update(body).digest('hex'), length: body.length })
})

t.test('any other body (a string, none) goes to the platform\'s fetch', async t => {
  const seen: unknown[] = []
  const fetch = bufferBodyFetch(async (_input, init) => { seen.push(init?.body); return new Response('fallback') })
  t.equal(await (await fetch('http://127.0.0.1:1/x', { method: 'POST', body: '{"a":1}' })).text(), 'fallback')
  t.equal(await (await fetch('http://127.0.0.1:1/x')).text(), 'fallback')
  t.same(seen, ['{"a":1}', undefined])
})

t.test('statuses: an error body is readable; 204 has none', async t => {
  const origin = await server(t, (req, _body, res) => {
    if (req.url === '/empty') { res.statusCode = 204; res.end(); return }
    res.statusCode = 429
    res.setHeader('retry-after', '3')
    res.end('{"error":{"code":"429"}}')
  })
  const fetch = bufferBodyFetch()
  const limited = await fetch(`${origin}/x`, { method: 'POST', body: Buffer.from('{}') })
  t.equal(limited.status, 429)
  t.equal(limited.headers.get('retry-after'), '3')
  t.same(await limited.json(), { error: { code: '429' } })
  const empty = await fetch(`${origin}/empty`, { method: 'POST', body: Buffer.from('{}') })
  t.equal(empty.status, 204)
  t.equal(await empty.text(), '')
})

t.test('failures reject: too large a response, an abort, a refused connection, a reset', async t => {
  const origin = await server(t, (req, _body, res) => {
    if (req.url === '/huge') { res.end(Buffer.alloc(MAX_RESPONSE_BYTES + 1, 0x20)); return }
    if (req.url === '/reset') req.socket.destroy()
    // /hang: never answers
  })
  const fetch = bufferBodyFetch()
  await t.rejects(fetch(`${origin}/huge`, { method: 'POST', body: Buffer.from('{}') }), ResponseTooLargeError)
  const controller = new AbortController()
  const hung = fetch(`${origin}/hang`, { method: 'POST', body: Buffer.from('{}'), signal: controller.signal })
  setTimeout(() => controller.abort(), 50)
  await t.rejects(hung, { name: 'AbortError' })
  await t.rejects(fetch(`${origin}/reset`, { method: 'POST', body: Buffer.from('{}') }))
  await t.rejects(fetch('http://127.0.0.1:1/refused', { method: 'POST', body: Buffer.from('{}') }))
})
