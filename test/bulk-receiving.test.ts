// Receiving a bulk job, attacked: both sources or neither, 101 images, an archive over BULK_MAX_ARCHIVE_BYTES, a third
// job while two are active (refused before its body is read), a client gone mid-upload. Whatever happens, no file is
// left under DATA_DIR/bulk, and the next job is received as usual.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, tempDataDir } from './helper.ts'
import { sendJson } from './support/http.ts'
import { jpeg } from './support/images.ts'
import { makeZip } from './support/zip.ts'
import { createBody, createJob, until, CREATE } from './support/bulk.ts'
import { gatedVision } from './support/gated-vision.ts'
import { connect, postHead, readResponse, write, closed } from './support/raw-http.ts'

function filesUnder (dataDir: string): string[] {
  try {
    return readdirSync(join(dataDir, 'bulk'), { recursive: true, withFileTypes: true }).filter(e => e.isFile()).map(e => e.name)
  } catch {
    return []
  }
}

async function noFileLeft (t: Test, dataDir: string, what: string): Promise<void> {
  const deadline = Date.now() + 2000
  while (filesUnder(dataDir).length > 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 25))
  t.strictSame(filesUnder(dataDir), [], `${what}: no file left under DATA_DIR/bulk`)
}

async function listening (t: Test, env: Record<string, string>, vision?: ReturnType<typeof gatedVision>['vision']): Promise<{ app: FastifyInstance, port: number }> {
  const app = await buildTestApp(t, { env, ...(vision === undefined ? {} : { vision }) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  return { app, port: typeof address === 'object' && address !== null ? address.port : 0 }
}

t.test('exactly one of archive and images; at most 100 images', async t => {
  const DATA_DIR = tempDataDir()
  const app = await buildTestApp(t, { env: { DATA_DIR } })
  const photo = await jpeg(64, 48)

  const both = await createJob(app, { archive: makeZip([{ name: 'a.jpg', data: photo }]), images: [photo] })
  t.equal(both.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT', 'both: refused')
  await noFileLeft(t, DATA_DIR, 'both')

  const neither = await createJob(app, {})
  t.equal(neither.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT', 'neither (multipart): refused')
  const json = await sendJson(app, { query: CREATE, variables: {} })
  t.equal(json.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT', 'neither (JSON): refused')
  const empty = await createJob(app, { images: [] })
  t.equal(empty.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT', 'an empty list: refused')

  const many = await createJob(app, { images: Array.from({ length: 101 }, () => photo) })
  t.equal(many.statusCode, 400, '101 images: refused')
  t.match(many.body.errors?.[0]?.message, /at most 100/)
  await noFileLeft(t, DATA_DIR, '101 images')

  const hundred = await createJob(app, { images: Array.from({ length: 100 }, () => photo) })
  t.equal(hundred.statusCode, 200, '100 images: taken')
  const done = await until(app, hundred.body.data.createBulkJob.id, ['COMPLETED'])
  t.equal(done.counts.succeeded, 100)
  await noFileLeft(t, DATA_DIR, 'after a job')
})

t.test('an archive over BULK_MAX_ARCHIVE_BYTES: 413, nothing kept; a ZIP that is not one: BAD_USER_INPUT, nothing kept', async t => {
  const DATA_DIR = tempDataDir()
  const app = await buildTestApp(t, { env: { DATA_DIR, BULK_MAX_ARCHIVE_BYTES: String(1024 * 1024) } })
  const big = makeZip([{ name: 'noise.jpg', data: randomBytes(1_600_000), method: 0 }])
  const refused = await createJob(app, { archive: big })
  t.equal(refused.statusCode, 413)
  t.equal(refused.body.errors?.[0]?.extensions.code, 'PAYLOAD_TOO_LARGE')
  await noFileLeft(t, DATA_DIR, 'oversize')

  const notZip = await createJob(app, { archive: randomBytes(5000) })
  t.equal(notZip.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT', 'not a ZIP: refused as a whole')
  await noFileLeft(t, DATA_DIR, 'not a ZIP')
})

t.test('a third job while two are active: RATE_LIMITED before its body is read; a client gone mid-upload leaves no file', async t => {
  const DATA_DIR = tempDataDir()
  const gated = gatedVision()
  const { app, port } = await listening(t, { DATA_DIR, BULK_MAX_CONCURRENCY: '1' }, gated.vision)
  const photo = await jpeg(64, 48)
  const { started } = gated.hold()
  const first = await createJob(app, { images: [photo] })
  const second = await createJob(app, { images: [photo] })
  t.ok(first.body.data?.createBulkJob.id && second.body.data?.createBulkJob.id, 'two jobs')
  await started

  // The third: operations and map are sent, then the socket waits with the archive unsent; the refusal comes first.
  const body = await createBody({ archive: makeZip([{ name: 'a.jpg', data: randomBytes(200_000), method: 0 }]) })
  const socket = await connect(port)
  const response = readResponse(socket)
  await write(socket, postHead('/graphql', body.headers, body.payload.length))
  const fileStart = body.payload.indexOf(Buffer.from('filename='))
  await write(socket, body.payload.subarray(0, fileStart + 200))
  const answer = await response
  t.equal(answer.statusCode, 429, 'refused while its file is not yet sent')
  t.equal(JSON.parse(answer.body).errors[0].extensions.code, 'RATE_LIMITED')
  socket.destroy()
  t.strictSame(filesUnder(DATA_DIR).filter(name => name.startsWith('upload-')), [], 'its upload was never written')

  gated.open()
  await until(app, first.body.data.createBulkJob.id, ['COMPLETED'])
  await until(app, second.body.data.createBulkJob.id, ['COMPLETED'])
  await noFileLeft(t, DATA_DIR, 'two jobs done')

  // A client gone mid-file: what it sent is removed.
  const partial = await createBody({ archive: makeZip([{ name: 'a.jpg', data: randomBytes(300_000), method: 0 }]) })
  const gone = await connect(port)
  await write(gone, postHead('/graphql', partial.headers, partial.payload.length))
  await write(gone, partial.payload.subarray(0, 150_000))
  await new Promise(resolve => setTimeout(resolve, 200))
  t.ok(filesUnder(DATA_DIR).some(name => name.startsWith('upload-')), 'the upload was being written to disk')
  gone.destroy()
  await closed(gone)
  await noFileLeft(t, DATA_DIR, 'aborted mid-upload')

  const after = await createJob(app, { images: [photo] })
  t.equal(after.statusCode, 200, 'the caller may send a job again')
  await until(app, after.body.data.createBulkJob.id, ['COMPLETED'])
})
