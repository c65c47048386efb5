// The image pipeline: only what the model uses leaves the service.
import t from 'tap'
import { crc32 } from 'node:zlib'
import sharp from 'sharp'
import { FakeAzure, imageFromChat } from './support/fake-azure.ts'
import { buildAzureTestApp, testConfig } from './helper.ts'
import { encodeParts, IDENTIFY } from './support/multipart.ts'
import * as images from './support/images.ts'
import { createImagePipeline } from '../src/image/pipeline.ts'
import { inspectImage } from '../src/image/inspect.ts'
import { estimateImageTokens } from '../src/image/tokens.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
const { app } = await buildAzureTestApp(t, fake)
const pipeline = createImagePipeline(testConfig().images)

const IDENTIFY_SENT = IDENTIFY.replace('image { sha256 mimeType bytes width height }',
  'image { sha256 mimeType bytes width height sentMimeType sentBytes sentWidth sentHeight estimatedImageTokens }')
  .replace('$language: String)', '$language: String, $detail: ImageDetail)')
  .replace('language: $language)', 'language: $language, detail: $detail)')

async function identify (file: Buffer, detail?: string) {
  const body = await encodeParts([
    ['operations', JSON.stringify({ query: IDENTIFY_SENT, variables: { image: null, detail } })],
    ['map', JSON.stringify({ 0: ['variables.image'] })],
    ['0', file, 'photo', 'image/jpeg']
  ])
  const before = fake.chatRequests.length
  const res = await app.inject({ method: 'POST', url: '/graphql', ...body })
  return { body: res.json(), calls: fake.chatRequests.slice(before) }
}

async function prepare (file: Buffer, detail: 'auto' | 'high' | 'low' = 'auto') {
  return await pipeline.prepare(file, await inspectImage(file), detail)
}

/** A PNG whose header claims width × height, with a tiny body: a decompression bomb's shape. */
function pngClaiming (source: Buffer, width: number, height: number): Buffer {
  const png = Buffer.from(source)
  png.writeUInt32BE(width, 16)
  png.writeUInt32BE(height, 20)
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29) // IHDR's CRC over type + data
  return png
}

t.test('a phone photo: GPS and all metadata stripped from what Azure receives, downscaled, detail sent', async t => {
  const photo = await images.jpegWithGps(4000, 3000)
  t.ok((await sharp(photo).metadata()).exif, 'the upload carries EXIF')
  const { body, calls } = await identify(photo)
  t.notOk(body.errors, JSON.stringify(body.errors))
  t.equal(calls.length, 1)
  const sent = imageFromChat(calls[0]!)
  t.equal(sent.mimeType, 'image/jpeg')
  t.equal(sent.detail, 'auto')
  const meta = await sharp(sent.bytes).metadata()
  t.same([meta.width, meta.height], [1024, 768], 'fit 2048, then short side 768')
  t.equal(meta.exif, undefined, 'no EXIF')
  t.equal(meta.xmp, undefined, 'no XMP')
  t.equal(meta.iptc, undefined, 'no IPTC')
  t.notOk(sent.bytes.includes('GPS'), 'no GPS tag anywhere in the bytes')
  t.notOk(sent.bytes.includes('TestPhone'), 'no camera make')
  const info = body.data.identifyVehicle.image
  t.match(info, { width: 4000, height: 3000, sentMimeType: 'image/jpeg', sentWidth: 1024, sentHeight: 768, sentBytes: sent.bytes.length })
  t.equal(info.estimatedImageTokens, 765, '85 + 170 × 4 tiles')
  t.equal(info.estimatedImageTokens, estimateImageTokens(4000, 3000, 'high'), 'the same as for the upload: the model downscales the same way')
})

t.test('detail LOW fits in 512×512 and is sent as low', async t => {
  const { body, calls } = await identify(await images.jpeg(2000, 1000), 'LOW')
  const sent = imageFromChat(calls[0]!)
  t.equal(sent.detail, 'low')
  const meta = await sharp(sent.bytes).metadata()
  t.same([meta.width, meta.height], [512, 256])
  t.equal(body.data.identifyVehicle.image.estimatedImageTokens, 85)
})

t.test('sizes and orientations', async t => {
  const cases: Array<[string, Buffer, 'auto' | 'high' | 'low', number, number]> = [
    ['landscape 4000×3000', await images.jpeg(4000, 3000), 'high', 1024, 768],
    ['portrait 3000×4000', await images.jpeg(3000, 4000), 'high', 768, 1024],
    ['EXIF-rotated portrait (stored 4000×3000, orientation 6)', await images.jpeg(4000, 3000, { orientation: 6 }), 'high', 768, 1024],
    ['EXIF-rotated portrait (orientation 8), low', await images.jpeg(1600, 1200, { orientation: 8 }), 'low', 384, 512],
    ['panorama 8000×1000', await images.jpeg(8000, 1000), 'high', 2048, 256],
    ['WebP 3000×3000', await images.webp(3000, 3000), 'auto', 768, 768],
    ['PNG 2500×1000', await images.png(2500, 1000), 'high', 1920, 768]
  ]
  for (const [name, file, detail, width, height] of cases) {
    const prepared = await prepare(file, detail)
    const meta = await sharp(prepared.bytes).metadata()
    t.same([meta.width, meta.height, prepared.width, prepared.height], [width, height, width, height], name)
    t.equal(meta.orientation, undefined, `${name}: no orientation tag left`)
  }
})

t.test('never upscales; small clean images go out unchanged', async t => {
  const small = await images.jpeg(300, 200)
  const unchanged = await prepare(small)
  t.equal(unchanged.original, true)
  t.ok(unchanged.bytes.equals(small), 'the original bytes')

  const smallWithExif = await images.jpegWithGps(300, 200)
  const stripped = await prepare(smallWithExif)
  t.equal(stripped.original, false, 're-encoded to drop the metadata')
  t.same([stripped.width, stripped.height], [300, 200], 'not upscaled')
  t.notOk(stripped.bytes.includes('GPS'))

  const rotatedSmall = await prepare(await images.jpeg(200, 100, { orientation: 6 }))
  t.same([rotatedSmall.width, rotatedSmall.height], [100, 200], 'turned upright, same size')
})

t.test('PNG with transparency is flattened on white', async t => {
  const background = { r: 0, g: 0, b: 0, alpha: 0 }
  const transparent = await sharp({ create: { width: 3000, height: 2000, channels: 4, background } }).png().toBuffer()
  const prepared = await prepare(transparent)
  t.equal(prepared.mimeType, 'image/jpeg')
  const { data } = await sharp(prepared.bytes).raw().toBuffer({ resolveWithObject: true })
  t.ok(data[0]! > 245 && data[1]! > 245 && data[2]! > 245, 'white where it was transparent')
})

t.test('identical input gives identical output bytes', async t => {
  const photo = await images.jpegWithGps(2500, 1800)
  const [a, b] = await Promise.all([prepare(photo), prepare(photo)])
  t.ok(a.bytes.equals(b.bytes))
})

t.test('a decompression bomb is refused from its header: fast, no pixels allocated, no upstream call', async t => {
  const bomb = pngClaiming(await images.png(16, 16), 30000, 30000)
  t.same(await sharp(bomb, { limitInputPixels: false }).metadata().then(m => [m.width, m.height]), [30000, 30000], 'it claims 900 megapixels')
  const rssBefore = process.memoryUsage().rss
  const started = performance.now()
  const { body, calls } = await identify(bomb)
  const elapsed = performance.now() - started
  t.equal(body.errors[0].extensions.code, 'BAD_USER_INPUT')
  t.match(body.errors[0].message, /too large: 30000×30000 pixels/)
  t.equal(calls.length, 0, 'no upstream call')
  t.ok(elapsed < 500, `refused in ${Math.round(elapsed)} ms`)
  const grown = process.memoryUsage().rss - rssBefore
  t.ok(grown < 64 * 1024 * 1024, `RSS grew ${Math.round(grown / 1024 / 1024)} MB (decoding would need 3.6 GB)`)
})

t.test('a JPEG that is corrupt inside is refused when it has to be decoded', async t => {
  const photo = await images.jpeg(3000, 2000)
  const corrupt = Buffer.from(photo)
  // Header and end marker intact, scan data scrambled: only a decode can tell.
  for (let i = 2000; i < corrupt.length - 2000; i += 7) corrupt[i] = (i * 31) & 0xff
  const { body, calls } = await identify(corrupt)
  t.equal(calls.length, 0)
  t.equal(body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT', JSON.stringify(body.errors))
})
