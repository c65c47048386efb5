// src/graphql/buffered-multipart.ts: a body of declared length is read into one pooled buffer, its file is a view of
// that buffer (no copy), and the buffer goes back to the pool only once both the parse and every file are done with
// it; a client that goes away mid-body gets its buffer back to the pool at once.
import { PassThrough } from 'node:stream'
import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { readBufferedBody } from '../src/graphql/buffered-multipart.ts'
import { UploadBuffers } from '../src/graphql/upload-buffers.ts'
import type { ReceivedPart, UploadLimits } from '../src/graphql/upload-file.ts'

const limits: UploadLimits = {
  maxFileBytes: 1024 * 1024,
  maxFiles: 2,
  maxFieldBytes: 64 * 1024,
  idleTimeoutMs: 10_000,
  minBytesPerSecond: 0,
  bufferBodiesUpTo: 1024 * 1024
}
const file = Buffer.alloc(100_000, 7)
const body = Buffer.concat([
  Buffer.from('--b1\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{"a":1}\r\n' +
    '--b1\r\nContent-Disposition: form-data; name="0"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'),
  file,
  Buffer.from('\r\n--b1--\r\n')
])

/** A request whose raw stream is fed by the test. */
function request (): { req: FastifyRequest, raw: PassThrough } {
  const raw = new PassThrough()
  const req = { headers: { 'content-type': 'multipart/form-data; boundary=b1' }, raw } as unknown as FastifyRequest
  return { req, raw }
}

t.test('the file is a view of the pooled buffer, which goes back once the parse and the file are done', async (t) => {
  const buffers = new UploadBuffers()
  const { req, raw } = request()
  const reading = readBufferedBody(req, body.length, buffers)
  // In three pieces, as a socket delivers them.
  raw.write(body.subarray(0, 10)); raw.write(body.subarray(10, 70_000)); raw.end(body.subarray(70_000))
  const buffered = await reading
  if (buffered === null) throw new Error('handed back')
  const parts = [...buffered.parts(limits)] as ReceivedPart[]
  t.same(parts.map(p => [p.type, p.fieldname]), [['field', 'operations'], ['file', '0']])
  t.equal(parts[0]?.type === 'field' && parts[0].value, '{"a":1}')
  const filePart = parts[1]
  if (filePart?.type !== 'file') throw new Error('no file part')
  const upload = await filePart.receive({ maxFiles: 1, maxFileBytes: limits.maxFileBytes, sink: 'memory' }, [])
  t.ok(upload.buffer.equals(file), 'the file has its bytes')
  buffered.done()
  t.equal(buffers.idleBytes, 0, 'held by the file after the parse')
  // Another upload now would get a different buffer: this one is still in use.
  upload.release()
  t.equal(buffers.idleBytes, 128 * 1024, 'back in the pool once the file is released')
  const again = buffers.take(body.length)
  t.equal(again.buffer, upload.buffer.buffer, 'the same memory is handed out again: the file was a view of it, not a copy')
})

t.test('released before the parse is over: the buffer waits for the parse', async (t) => {
  const buffers = new UploadBuffers()
  const { req, raw } = request()
  const reading = readBufferedBody(req, body.length, buffers)
  raw.end(body)
  const buffered = await reading
  if (buffered === null) throw new Error('handed back')
  const filePart = [...buffered.parts(limits)][1]
  if (filePart?.type !== 'file') throw new Error('no file part')
  const upload = await filePart.receive({ maxFiles: 1, maxFileBytes: limits.maxFileBytes, sink: 'memory' }, [])
  upload.release()
  upload.release() // idempotent
  t.equal(buffers.idleBytes, 0, 'not yet: the parse holds it')
  buffered.done()
  buffered.done()
  t.equal(buffers.idleBytes, 128 * 1024, 'back once, after both')
})

t.test('a file over its limit is refused as too large (413 in ./upload.ts)', async (t) => {
  const buffers = new UploadBuffers()
  const { req, raw } = request()
  const reading = readBufferedBody(req, body.length, buffers)
  raw.end(body)
  const filePart = [...(await reading)?.parts(limits) ?? []][1]
  if (filePart?.type !== 'file') throw new Error('no file part')
  await t.rejects(filePart.receive({ maxFiles: 1, maxFileBytes: file.length - 1, sink: 'memory' }, []), { code: 'FST_REQ_FILE_TOO_LARGE' })
  await t.resolves(filePart.receive({ maxFiles: 1, maxFileBytes: file.length, sink: 'memory' }, []), 'exactly at the limit')
})

t.test('the client goes away mid-body: rejected as aborted, the buffer back in the pool', async (t) => {
  for (const [name, fail] of [
    ['the stream closes without its end', (raw: PassThrough) => { raw.destroy() }],
    ['the stream fails (the progress watch: stalled)', (raw: PassThrough) => { raw.destroy(Object.assign(new Error('upload stalled'), { code: 'UPLOAD_STALLED' })) }],
    ['the stream ends short of its declared length', (raw: PassThrough) => { raw.end() }]
  ] as const) {
    const buffers = new UploadBuffers()
    const { req, raw } = request()
    const reading = readBufferedBody(req, body.length, buffers)
    raw.write(body.subarray(0, 50_000))
    await new Promise(resolve => setImmediate(resolve))
    fail(raw)
    const err = await reading.then(() => null, (e: { code?: string }) => e)
    t.ok(err !== null && ['ECONNRESET', 'UPLOAD_STALLED'].includes(err.code ?? ''), `${name}: rejected (${err?.code})`)
    t.equal(buffers.idleBytes, 128 * 1024, `${name}: the buffer is back in the pool`)
    t.equal(raw.listenerCount('data'), 0, `${name}: no listener left on the stream`)
  }
})

t.test('a content type without a boundary is refused before anything is read', async (t) => {
  const buffers = new UploadBuffers()
  for (const type of ['multipart/form-data', 'multipart/form-data; boundary=', `multipart/form-data; boundary=${'x'.repeat(71)}`]) {
    const raw = new PassThrough()
    const req = { headers: { 'content-type': type }, raw } as unknown as FastifyRequest
    await t.rejects(readBufferedBody(req, 10, buffers), { code: 'BAD_REQUEST', message: /Boundary not found/ }, type)
    t.equal(raw.listenerCount('data'), 0)
  }
})

t.test('operations that must stream (an upload policy): the bytes read so far go back into the stream, in order', async (t) => {
  for (const [name, pieces] of [
    ['in one piece', [body]],
    ['operations complete in the first of three pieces', [body.subarray(0, 200), body.subarray(200, 60_000), body.subarray(60_000)]],
    ['operations split across pieces', [body.subarray(0, 40), body.subarray(40, 80), body.subarray(80)]],
    // Looked for once what arrived has doubled: still found, and the rest handed back in order.
    ['the first 300 bytes one at a time', [...Array.from({ length: 300 }, (_, i) => body.subarray(i, i + 1)), body.subarray(300)]]
  ] as const) {
    const buffers = new UploadBuffers()
    const { req, raw } = request()
    const seen: unknown[] = []
    const reading = readBufferedBody(req, body.length, buffers, operations => { seen.push(operations); return false })
    for (const piece of pieces) { raw.write(piece); await new Promise(resolve => setImmediate(resolve)) }
    raw.end()
    t.equal(await reading, null, `${name}: handed back`)
    t.same(seen, [{ a: 1 }], `${name}: asked once, with the operations`)
    t.equal(buffers.idleBytes, 128 * 1024, `${name}: the pooled buffer is back`)
    const chunks: Buffer[] = []
    for await (const chunk of raw) chunks.push(chunk as Buffer)
    t.ok(Buffer.concat(chunks).equals(body), `${name}: the stream still yields the whole body, from its first byte`)
  }
})

t.test('operations that can be read whole: asked once, the body read whole', async (t) => {
  const buffers = new UploadBuffers()
  const { req, raw } = request()
  let asked = 0
  const reading = readBufferedBody(req, body.length, buffers, () => { asked++; return true })
  raw.write(body.subarray(0, 100)); raw.write(body.subarray(100, 50_000)); raw.end(body.subarray(50_000))
  const buffered = await reading
  t.equal(asked, 1)
  t.same([...buffered?.parts(limits) ?? []].map(p => p.fieldname), ['operations', '0'])
})
