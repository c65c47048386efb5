// Upload buffers are reused once their identification is over: never while it runs, never showing another
// upload's bytes, and what waits for reuse is bounded.
import { createHash } from 'node:crypto'
import t from 'tap'
import { UploadBuffers } from '../src/graphql/upload-buffers.ts'
import { buildTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import { jpeg } from './support/images.ts'

t.test('sizes and reuse', async t => {
  const buffers = new UploadBuffers()
  const a = buffers.take(100_000)
  t.equal(a.length, 131_072, 'a power of two at least as big')
  t.equal(buffers.take(10).length, 65_536, 'at least 64 KiB')
  buffers.give(a)
  t.equal(buffers.idleBytes, 131_072)
  t.equal(buffers.take(120_000), a, 'the same buffer again')
  t.equal(buffers.idleBytes, 0)
  const big = buffers.take(3 * 1024 * 1024)
  t.equal(big.length, 3 * 1024 * 1024, 'beyond 2 MiB: exactly the size, never kept')
  buffers.give(big)
  t.equal(buffers.idleBytes, 0)
  buffers.give(Buffer.alloc(100_000)) // not one of ours (not a size class): ignored
  t.equal(buffers.idleBytes, 0)
  for (let i = 0; i < 10; i++) buffers.give(Buffer.allocUnsafeSlow(2 * 1024 * 1024))
  t.equal(buffers.idleBytes, 8 * 1024 * 1024, 'at most 8 MiB wait for reuse')
})

t.test('concurrent uploads of different photos: each answer is about its own bytes, again and again', async t => {
  const app = await buildTestApp(t)
  const photos = await Promise.all(Array.from({ length: 12 }, (_, i) => jpeg(200 + 8 * i, 150 + 4 * i)))
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all(photos.map(async photo => {
      const body = await identifyBody(photo)
      const res = await app.inject({ method: 'POST', url: '/graphql', headers: body.headers, payload: body.payload })
      return { photo, identification: res.json().data?.identifyVehicle }
    }))
    for (const { photo, identification } of answers) {
      t.equal(identification?.image.sha256, createHash('sha256').update(photo).digest('hex'), `round ${round + 1}: its own sha256`)
      t.equal(identification?.image.bytes, photo.length)
    }
  }
})
