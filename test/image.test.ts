// What an upload is comes from its bytes, never from the client's file name or content type:
// JPEG, PNG, WebP and static GIF are accepted with their real type and size; anything else,
// or a file cut short or corrupt, is refused with BAD_USER_INPUT before the vision service is called.
import { createHash } from 'node:crypto'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { sendParts, type Answer } from './support/http.ts'
import { identifyParts } from './support/multipart.ts'
import { animatedGif, gif, heic, jpeg, jpegWithGps, pdf, png, svg, text, webp, withoutPngChunks } from './support/images.ts'
import sharp from 'sharp'
import { inspectImage, isComplete } from '../src/image/inspect.ts'
import type { ImageMimeType } from '../src/image/mime-types.ts'
import { createSimulatedVision } from '../src/vision/simulated.ts'
import type { IdentifyRequest, VisionService } from '../src/vision/types.ts'

const ACCEPTED_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif']

type Identified = { identifyVehicle: { image: { sha256: string, mimeType: string, bytes: number, width: number, height: number } } }

const sha256 = (buffer: Buffer): string => createHash('sha256').update(buffer).digest('hex')
const half = (buffer: Buffer): Buffer => buffer.subarray(0, buffer.length >> 1)

/** The simulated backend, recording every identify call. */
function recordingVision (): VisionService & { calls: IdentifyRequest[] } {
  const inner = createSimulatedVision()
  const calls: IdentifyRequest[] = []
  return {
    backend: inner.backend,
    status: () => inner.status(),
    calls,
    async identify (request) {
      calls.push(request)
      return await inner.identify(request)
    }
  }
}

const vision = recordingVision()
const app = await buildTestApp(t, { vision })

/** Uploads `file` claiming it is a PDF named x.txt: the server must not care. */
async function upload (server: FastifyInstance, file: Buffer): Promise<Answer<Identified>> {
  return await sendParts<Identified>(server, identifyParts(file, {}, 'x.txt', 'application/pdf'))
}

/** Runs `fn` and returns how many times the vision service was called meanwhile. */
async function visionCallsDuring (fn: () => Promise<void>): Promise<number> {
  const before = vision.calls.length
  await fn()
  return vision.calls.length - before
}

function assertNamesAcceptedTypes (t: Test, message: string | undefined): void {
  for (const name of ['JPEG', 'PNG', 'WebP', 'GIF']) t.match(message, name, `the message names ${name}`)
}

t.test('accepted images: the type and size come from the bytes', async (t) => {
  const cases: Array<[name: string, file: Buffer, mimeType: ImageMimeType, width: number, height: number]> = [
    ['JPEG', await jpeg(64, 48), 'image/jpeg', 64, 48],
    ['JPEG 800×600', await jpeg(800, 600), 'image/jpeg', 800, 600],
    ['PNG', await png(120, 90), 'image/png', 120, 90],
    ['PNG with alpha', await png(33, 17, true), 'image/png', 33, 17],
    ['WebP', await webp(100, 75), 'image/webp', 100, 75],
    ['static GIF', await gif(40, 30), 'image/gif', 40, 30]
  ]
  for (const [name, file, mimeType, width, height] of cases) {
    t.test(`${name}, sent as application/pdf named x.txt`, async (t) => {
      let answer: Awaited<ReturnType<typeof upload>> | undefined
      const calls = await visionCallsDuring(async () => { answer = await upload(app, file) })
      t.equal(answer?.statusCode, 200)
      t.equal(answer?.body.errors, undefined, 'no errors')
      t.same(answer?.body.data?.identifyVehicle.image, { sha256: sha256(file), mimeType, bytes: file.length, width, height })
      t.equal(calls, 1, 'the vision service was called once')
      const call = vision.calls.at(-1)
      t.same([call?.mimeType, call?.width, call?.height], [mimeType, width, height], 'it was told the sniffed type and size')
      t.ok(call?.image.equals(file), 'it got the uploaded bytes (they already fit and hold pixel data only)')
    })
  }
})

t.test('refused files: BAD_USER_INPUT naming the accepted types, and no call to the vision service', async (t) => {
  const jpegFile = await jpeg(200, 150)
  const corruptSof = Buffer.from(jpegFile)
  const sof = corruptSof.indexOf(Buffer.from([0xff, 0xc0]))
  corruptSof.writeUInt32BE(0, sof + 5) // height and width 0

  const cases: Array<[name: string, file: Buffer, reason: RegExp]> = [
    ['an empty file', Buffer.alloc(0), /The uploaded file is empty/],
    ['text', text, /Unsupported file type \(not a recognised image\)/],
    ['SVG', svg, /Unsupported file type \(not a recognised image\)/],
    ['PDF', pdf, /Unsupported file type \(application\/pdf\)/],
    ['HEIC', heic, /Unsupported file type \(image\/heic\)/],
    ['an animated GIF', await animatedGif(), /Animated images are not supported/],
    ['a JPEG cut in half', half(jpegFile), /truncated or corrupt/],
    ['a PNG cut in half', half(await png(200, 150)), /truncated or corrupt/],
    ['a GIF cut in half', half(await gif(200, 150)), /truncated or corrupt/],
    ['a WebP cut in half', half(await webp(200, 150)), /truncated or corrupt/],
    ['a JPEG start of image then garbage', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from('garbage '.repeat(20))]), /truncated or corrupt|corrupt: its header/],
    ['a JPEG signature alone then garbage', Buffer.concat([Buffer.from([0xff, 0xd8]), Buffer.from('garbage '.repeat(20))]), /Unsupported file type/],
    ['a JPEG whose frame header says 0×0', corruptSof, /corrupt: (its header cannot be read|it has no dimensions)/]
  ]
  for (const [name, file, reason] of cases) {
    t.test(name, async (t) => {
      let answer: Awaited<ReturnType<typeof upload>> | undefined
      const calls = await visionCallsDuring(async () => { answer = await upload(app, file) })
      t.equal(answer?.statusCode, 200, 'HTTP 200: a field error, the request itself was fine')
      t.equal(answer?.body.data, null, 'data is null')
      const error = answer?.body.errors?.[0]
      t.equal(error?.extensions.code, 'BAD_USER_INPUT')
      t.match(error?.message, reason, 'the message says what is wrong')
      assertNamesAcceptedTypes(t, error?.message)
      t.same(error?.extensions.acceptedTypes, ACCEPTED_TYPES, 'extensions.acceptedTypes')
      t.equal(calls, 0, 'the vision service was not called')
    })
  }
})

t.test('a PNG as sharp writes it (with pHYs) is re-muxed to its pixel chunks, losslessly', async (t) => {
  const file = await sharp({ create: { width: 40, height: 30, channels: 3, background: '#284' } }).png().toBuffer()
  t.ok(file.includes('pHYs'), 'sharp writes pHYs')
  let answer: Awaited<ReturnType<typeof upload>> | undefined
  await visionCallsDuring(async () => { answer = await upload(app, file) })
  t.equal(answer?.body.errors, undefined, 'no errors')
  const call = vision.calls.at(-1)
  t.equal(call?.mimeType, 'image/png')
  t.ok(call?.image.equals(withoutPngChunks(file, ['pHYs'])), 'IHDR, IDAT and IEND, unchanged')
})

t.test('inspectImage', async (t) => {
  t.test('reports what the file is', async (t) => {
    const file = await png(30, 20)
    t.same(await inspectImage(file), {
      sha256: sha256(file),
      mimeType: 'image/png',
      bytes: file.length,
      width: 30,
      height: 20,
      orientation: undefined,
      hasMetadata: false,
      pixelDataOnly: true,
      decode: { width: 30, height: 20, channels: 3, bytesPerSample: 1, interlaced: false }
    })
  })

  t.test('reads EXIF orientation and notices metadata, without rotating the size', async (t) => {
    t.match(await inspectImage(await jpeg(64, 48, { orientation: 6 })), { width: 64, height: 48, orientation: 6, hasMetadata: true })
    t.match(await inspectImage(await jpegWithGps(80, 60)), { hasMetadata: true })
    t.match(await inspectImage(await jpeg(80, 60)), { hasMetadata: false })
  })

  t.test('reports the size of one frame of a GIF', async (t) => {
    t.match(await inspectImage(await gif(50, 40)), { mimeType: 'image/gif', width: 50, height: 40 })
  })

  t.test('refuses with BAD_USER_INPUT and the accepted types', async (t) => {
    await t.rejects(inspectImage(pdf), { code: 'BAD_USER_INPUT', message: /application\/pdf.*JPEG, PNG, WebP or non-animated GIF/, extensions: { acceptedTypes: ACCEPTED_TYPES } })
    await t.rejects(inspectImage(Buffer.alloc(0)), { code: 'BAD_USER_INPUT', message: /empty/ })
    await t.rejects(inspectImage(await animatedGif()), { code: 'BAD_USER_INPUT', message: /Animated/ })
  })

  t.test('refuses every prefix of an image that cuts into its data', async (t) => {
    const files: Array<[name: string, file: Buffer, keep: number]> = [
      ['JPEG', await jpeg(64, 48), 0],
      // A PNG that lost only part of its IEND chunk (the last 12 bytes) still holds the whole image.
      ['PNG', await png(64, 48), 12],
      ['WebP', await webp(64, 48), 0],
      ['GIF', await gif(64, 48), 0]
    ]
    for (const [name, file, keep] of files) {
      const accepted: number[] = []
      for (let length = 1; length < file.length - keep; length++) {
        try {
          await inspectImage(file.subarray(0, length))
          accepted.push(length)
        } catch {}
      }
      t.same(accepted, [], `no prefix of the ${file.length}-byte ${name} is accepted`)
    }
  })
})

t.test('isComplete', async (t) => {
  const files: Array<[mime: ImageMimeType, file: Buffer]> = [
    ['image/jpeg', await jpeg(64, 48)],
    ['image/jpeg', await jpegWithGps(80, 60)], // an EXIF thumbnail's end marker is not the image's
    ['image/png', await png(64, 48)],
    ['image/webp', await webp(64, 48)],
    ['image/gif', await gif(64, 48)]
  ]
  for (const [mime, file] of files) {
    t.ok(isComplete(file, mime), `a whole ${mime} is complete`)
    t.notOk(isComplete(half(file), mime), `half a ${mime} is not`)
    // The end marker is all a PNG check can see: only a cut that removes the IEND chunk (12 bytes) shows.
    const cut = mime === 'image/png' ? 12 : 1
    t.notOk(isComplete(file.subarray(0, file.length - cut), mime), `a ${mime} without its last ${cut} byte(s) is not`)
  }
  t.ok(isComplete(Buffer.concat([await gif(64, 48), Buffer.alloc(16)]), 'image/gif'), 'a GIF padded with zero bytes is complete')
  t.notOk(isComplete(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46]), 'image/jpeg'), 'a JPEG with no scan is not')
  t.notOk(isComplete(Buffer.from('RIFF'), 'image/webp'), 'a WebP shorter than its RIFF header is not')
})
