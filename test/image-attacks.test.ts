// Security review, issue 7: hostile images as classes of attack, each in more than one shape.
//  4. decompression bombs in every format, bit depth and interlacing, refused from the header;
//  5. extreme shapes, refused before decoding;
//  6. metadata where a "known kinds" check does not look: only allow-listed pixel data goes out unchanged;
//  7. CMYK, odd JPEGs and frameless GIFs (a GIF/HTML polyglot) normalised or refused.
// Memory and CPU targets are measured against a real server process in test/load/images.load.ts.
import t from 'tap'
import sharp from 'sharp'
import { FakeAzure, imageFromChat } from './support/fake-azure.ts'
import { buildAzureTestApp, testConfig } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'
import { createImagePipeline, MAX_JPEG_SCANS } from '../src/image/pipeline.ts'
import { inspectImage } from '../src/image/inspect.ts'
import { coefficientBytes, estimateDecode, jpegShrinkOnLoad, PNG_RESAMPLER_ROWS } from '../src/image/decode-cost.ts'
import { loadConfig } from '../src/config.ts'

const MiB = 1024 * 1024
const config = testConfig()
const pipeline = createImagePipeline(config.images)
const GPS = 'GPS:52.5200N,13.4050E'
/** The review's file: 7000×7000 16-bit RGBA Adam7, 381 KB (made once, used by several tests). */
const REVIEW_PNG = await images.rawPng({ width: 7000, height: 7000, bitDepth: 16, colourType: 6, interlaced: true })

async function prepare (file: Buffer, detail: 'auto' | 'high' | 'low' = 'auto') {
  return await pipeline.prepare(file, await inspectImage(file), detail)
}

/** Resolves to the refusal's code, reason and message (or fails the test if it was accepted). */
async function refusal (file: Buffer) {
  try {
    const prepared = await prepare(file)
    return { code: 'ACCEPTED', reason: undefined, message: `${prepared.width}×${prepared.height}`, extensions: {} as Record<string, unknown> }
  } catch (err) {
    const e = err as { code: string, message: string, extensions: Record<string, unknown> }
    return { code: e.code, reason: e.extensions?.reason, message: e.message, extensions: e.extensions }
  }
}

t.test('configuration: defaults, and IMAGE_CONCURRENCY sized from the memory budget', async t => {
  const c = loadConfig({ LOG_LEVEL: 'silent' }).images
  t.match(c, { maxSide: 12_000, maxAspectRatio: 20, maxDecodeBytes: 48 * MiB, memoryBudgetBytes: 96 * MiB })
  t.ok(c.concurrency >= 1 && c.concurrency <= 2, `budget ÷ worst case = 2 at most (${c.concurrency})`)
  t.equal(loadConfig({ IMAGE_MEMORY_BUDGET_BYTES: String(8 * MiB) }).images.concurrency, 1, 'at least 1')
  t.equal(loadConfig({ IMAGE_MEMORY_BUDGET_BYTES: String(64 * MiB), IMAGE_MAX_DECODE_BYTES: String(16 * MiB), IMAGE_CONCURRENCY: '3' }).images.concurrency, 3, 'IMAGE_CONCURRENCY wins')
  const big = loadConfig({ IMAGE_MEMORY_BUDGET_BYTES: String(4096 * MiB) }).images.concurrency
  t.ok(big >= 1 && big <= 64, 'never more than the cores')
  t.throws(() => loadConfig({ IMAGE_MAX_ASPECT_RATIO: '0.5' }), /IMAGE_MAX_ASPECT_RATIO/)
  t.throws(() => loadConfig({ IMAGE_MAX_SIDE: '100' }), /IMAGE_MAX_SIDE/)
  t.throws(() => loadConfig({ IMAGE_MAX_DECODE_BYTES: '1000' }), /IMAGE_MAX_DECODE_BYTES/)
})

t.test('4. decode bytes are estimated from the header', async t => {
  t.test('PNG: pixels × channels × bytes per sample, whatever the interlacing, plus the resampler\'s rows', async t => {
    const cases: Array<[string, images.RawPngOptions, number]> = [
      ['7000² 16-bit RGBA Adam7 (the review\'s 592 KB file)', { width: 7000, height: 7000, bitDepth: 16, colourType: 6, interlaced: true }, 7000 * 7000 * 4 * 2],
      ['3000² 16-bit RGBA, not interlaced', { width: 3000, height: 3000, bitDepth: 16, colourType: 6 }, 3000 * 3000 * 4 * 2],
      ['300×200 16-bit grey', { width: 300, height: 200, bitDepth: 16, colourType: 0 }, 300 * 200 * 2],
      ['300×200 1-bit grey → 8-bit', { width: 300, height: 200, bitDepth: 1, colourType: 0 }, 300 * 200],
      ['300×200 palette → RGB', { width: 300, height: 200, bitDepth: 4, colourType: 3 }, 300 * 200 * 3],
      ['300×200 palette with tRNS → RGBA', { width: 300, height: 200, bitDepth: 8, colourType: 3, before: [images.pngChunk('PLTE', Buffer.alloc(3)), images.pngChunk('tRNS', Buffer.from([0]))] }, 300 * 200 * 4],
      ['300×200 grey + alpha', { width: 300, height: 200, colourType: 4, interlaced: true }, 300 * 200 * 2]
    ]
    for (const [name, options, bytes] of cases) {
      const inspected = await inspectImage(await images.rawPng(options))
      const row = bytes / options.height
      t.equal(estimateDecode('image/png', inspected.decode, 1).bytes, bytes + row * Math.min(options.height, PNG_RESAMPLER_ROWS), name)
      t.equal(inspected.decode.interlaced, options.interlaced ?? false, `${name}: interlacing read`)
    }
  })

  t.test('JPEG: shrink-on-load raster, plus the full coefficient buffer when progressive or multi-scan', async t => {
    t.same([1, 1.9, 2, 2.5, 3.9, 4, 5, 8, 9, 20].map(jpegShrinkOnLoad), [1, 1, 1, 1, 2, 2, 4, 4, 8, 8], 'sharp\'s shrink-on-load factors (one step less when the shrink\'s whole part equals it)')
    t.equal(coefficientBytes(16, 16, [{ h: 2, v: 2 }, { h: 1, v: 1 }, { h: 1, v: 1 }]), 6 * 64 * 2, '4:2:0: one MCU of 4 + 1 + 1 blocks')
    t.equal(coefficientBytes(17, 8, [{ h: 1, v: 1 }]), 3 * 64 * 2, 'padded to whole blocks')

    const baseline = await inspectImage(await sharp({ create: { width: 4000, height: 3000, channels: 3, background: '#284' } }).jpeg().toBuffer())
    t.same(baseline.decode.jpeg, {
      sof: 0xc0, precision: 8, components: [{ h: 2, v: 2 }, { h: 1, v: 1 }, { h: 1, v: 1 }], progressive: false, multiScan: false, scans: 1
    })
    t.equal(estimateDecode('image/jpeg', baseline.decode, 3000 / 768).bytes, 2000 * 1500 * 3, 'baseline 12 MP for 768: decoded at 1/2, nothing else')

    const progressive = await inspectImage(await sharp({ create: { width: 4000, height: 3000, channels: 3, background: '#284' } }).jpeg({ progressive: true, chromaSubsampling: '4:4:4' }).toBuffer())
    t.equal(progressive.decode.jpeg?.progressive, true)
    t.ok(progressive.decode.jpeg!.scans > 1, `progressive scans counted (${progressive.decode.jpeg!.scans})`)
    t.equal(estimateDecode('image/jpeg', progressive.decode, 3000 / 768).bytes, 2000 * 1500 * 3 + 4000 * 3000 * 3 * 2, 'progressive 4:4:4: plus 6 bytes a pixel of coefficients')

    const cmyk = await inspectImage(await sharp({ create: { width: 800, height: 600, channels: 3, background: '#284' } }).toColourspace('cmyk').jpeg({ progressive: true }).toBuffer())
    t.equal(cmyk.decode.channels, 4)
    t.equal(estimateDecode('image/jpeg', cmyk.decode, 1).bytes, 800 * 600 * 4 + 800 * 600 * 4 * 2, 'CMYK progressive: 4 channels, 8 bytes a pixel of coefficients')
  })

  t.test('GIF: the canvas grows to a frame outside the logical screen; WebP: 4 bytes a pixel', async t => {
    const decoy = images.gifRaw(10, 10, [images.gifFrame(4000, 3000, 2000, 2000)])
    const { decode } = await inspectImage(decoy)
    t.same([decode.width, decode.height], [6000, 5000], 'a 10×10 screen with a frame reaching 6000×5000')
    t.equal(estimateDecode('image/gif', decode, 1).bytes, 6000 * 5000 * 4)
    const webp = await inspectImage(await images.webp(300, 200))
    t.equal(estimateDecode('image/webp', webp.decode, 1).bytes, 300 * 200 * 4)
  })
})

t.test('4. bombs over IMAGE_MAX_DECODE_BYTES (48 MiB) are refused before decoding, in every format', async t => {
  const flat = (w: number, h: number) => sharp({ create: { width: w, height: h, channels: 3, background: '#284' } })
  const bombs: Array<[string, Buffer]> = [
    ['PNG 7000×7000 16-bit RGBA Adam7 (381 KB)', REVIEW_PNG],
    ['PNG 2600×2600 16-bit RGBA, not interlaced', await images.rawPng({ width: 2600, height: 2600, bitDepth: 16, colourType: 6 })],
    ['PNG 4200×4200 8-bit RGB Adam7', await images.rawPng({ width: 4200, height: 4200, interlaced: true })],
    ['JPEG 5000×5000 progressive 4:4:4', await flat(5000, 5000).jpeg({ progressive: true, chromaSubsampling: '4:4:4' }).toBuffer()],
    ['JPEG 2600×2600 progressive CMYK', await flat(2600, 2600).toColourspace('cmyk').jpeg({ progressive: true }).toBuffer()],
    ['GIF with a 10×10 screen and a 6000×5000 frame', images.gifRaw(10, 10, [images.gifFrame(4000, 3000, 2000, 2000)])],
    ['GIF 3700×3700', await flat(3700, 3700).gif().toBuffer()],
    ['WebP 3700×3700 lossless', await flat(3700, 3700).webp({ lossless: true }).toBuffer()]
  ]
  for (const [name, file] of bombs) {
    const r = await refusal(file)
    t.equal(r.code, 'BAD_USER_INPUT', `${name}: BAD_USER_INPUT`)
    t.equal(r.reason, 'IMAGE_DECODE_TOO_LARGE', `${name}: reason IMAGE_DECODE_TOO_LARGE`)
    t.match(r.message, /would take \d+ MiB to decode .*at most 48 MiB are accepted/, `${name}: says why (${r.message})`)
    t.ok((r.extensions.estimatedDecodeBytes as number) > 48 * MiB, `${name}: the estimate is in extensions`)
    // eslint-disable-next-line no-control-regex -- looking for exactly those
    t.notMatch(r.message, /[\u0000-\u0008]/, `${name}: no binary in the message`)
  }

  t.test('what a phone writes is not refused', async t => {
    const photo = await flat(4000, 3000).jpeg({ quality: 90 }).toBuffer()
    t.equal((await prepare(photo)).width, 1024, 'a 12 MP baseline JPEG')
    const progressive12 = await flat(4000, 3000).jpeg({ progressive: true }).toBuffer()
    t.equal((await prepare(progressive12)).width, 1024, 'a 12 MP progressive 4:2:0 JPEG (36 MB of coefficients)')
    const baseline48 = await flat(8000, 6000).jpeg().toBuffer()
    t.equal((await prepare(baseline48)).width, 1024, 'a 48 MP baseline JPEG (decoded at 1/8)')
  })

  t.test('a JPEG with more scans than any encoder writes', async t => {
    const progressive = await flat(600, 400).jpeg({ progressive: true }).toBuffer()
    const lastScan = progressive.lastIndexOf(Buffer.from([0xff, 0xda]))
    const scan = progressive.subarray(lastScan, progressive.length - 2)
    const many = images.beforeJpegEnd(progressive, Buffer.concat(Array.from({ length: MAX_JPEG_SCANS }, () => scan)))
    const r = await refusal(many)
    t.same([r.code, r.reason], ['BAD_USER_INPUT', 'IMAGE_TOO_MANY_SCANS'], r.message)
  })
})

t.test('5. extreme shapes are refused before decoding', async t => {
  const cases: Array<[string, Buffer, string]> = [
    ['PNG 1×50,000,000 (the review\'s, 190 KB)', await images.rawPng({ width: 1, height: 50_000_000 }), 'IMAGE_SIDE_TOO_LONG'],
    ['PNG 50,000,000×1', await images.rawPng({ width: 50_000_000, height: 1 }), 'IMAGE_SIDE_TOO_LONG'],
    ['PNG 12001×600', await images.rawPng({ width: 12001, height: 600 }), 'IMAGE_SIDE_TOO_LONG'],
    ['PNG 100×2500 (1:25)', await images.rawPng({ width: 100, height: 2500 }), 'IMAGE_ASPECT_RATIO'],
    ['PNG 3×64', await images.rawPng({ width: 3, height: 64 }), 'IMAGE_ASPECT_RATIO'],
    ['JPEG 1×65000', await sharp({ create: { width: 1, height: 65000, channels: 3, background: '#284' } }).jpeg().toBuffer(), 'IMAGE_SIDE_TOO_LONG'],
    ['JPEG 4000×150', await sharp({ create: { width: 4000, height: 150, channels: 3, background: '#284' } }).jpeg().toBuffer(), 'IMAGE_ASPECT_RATIO'],
    ['WebP 16383×3000', await sharp({ create: { width: 16383, height: 3000, channels: 3, background: '#284' } }).webp().toBuffer(), 'IMAGE_SIDE_TOO_LONG'],
    ['GIF 10×10 screen, a 1×13000 frame', images.gifRaw(10, 10, [images.gifFrame(0, 0, 1, 13000)]), 'IMAGE_SIDE_TOO_LONG'],
    ['PNG 10000×10000 (100 MP)', await images.rawPng({ width: 10000, height: 10000, bitDepth: 1, colourType: 0 }), 'IMAGE_TOO_MANY_PIXELS']
  ]
  for (const [name, file, reason] of cases) {
    const r = await refusal(file)
    t.same([r.code, r.reason], ['BAD_USER_INPUT', reason], `${name}: ${r.message}`)
  }
  t.equal((await prepare(await images.rawPng({ width: 40, height: 800 }))).height, 800, '1:20 is accepted')
  t.equal((await prepare(await images.rawPng({ width: 12000, height: 600, bitDepth: 8, colourType: 0 }))).width, 2048, '12000×600 is accepted')
})

t.test('6. only allow-listed pixel data goes out unchanged: GPS never reaches the model', async t => {
  const clean = await images.jpeg(300, 200)
  const exif = images.exifSegment(await images.jpegWithGps(300, 200))
  const gpsApp = images.jpegSegment(0xe1, Buffer.concat([Buffer.from('Exif\0\0'), Buffer.from(GPS)]))
  const progressive = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#284' } }).jpeg({ progressive: true }).toBuffer()
  const secondScan = progressive.indexOf(Buffer.from([0xff, 0xda]), progressive.indexOf(Buffer.from([0xff, 0xda])) + 2)
  const webp = await images.webp(300, 200)
  const png = await images.rawPng({ width: 300, height: 200 })
  const gif = await images.gif(300, 200)
  const gpsBlock = Buffer.from(GPS)

  const cases: Array<[string, Buffer]> = [
    ['JPEG: EXIF after the scan, before the end marker', images.beforeJpegEnd(clean, exif)],
    ['JPEG: an APP1 with GPS after the scan', images.beforeJpegEnd(clean, gpsApp)],
    ['JPEG: EXIF appended after the end marker', Buffer.concat([clean, exif])],
    ['JPEG: GPS text appended after the end marker', Buffer.concat([clean, gpsBlock])],
    ['JPEG: a COM segment', Buffer.concat([clean.subarray(0, 2), images.jpegSegment(0xfe, gpsBlock), clean.subarray(2)])],
    ['JPEG: an APP1 between progressive scans', Buffer.concat([progressive.subarray(0, secondScan), gpsApp, progressive.subarray(secondScan)])],
    ['JPEG: an APP15 private segment', Buffer.concat([clean.subarray(0, 2), images.jpegSegment(0xef, gpsBlock), clean.subarray(2)])],
    ['WebP: an EXIF chunk with the VP8X flag cleared', images.webpFrom([images.vp8x(300, 200, 0), images.webpChunks(webp), images.riffChunk('EXIF', exif.subarray(4))])],
    ['WebP: a simple WebP with an EXIF chunk after the bitstream', images.webpFrom([images.webpChunks(webp), images.riffChunk('EXIF', gpsBlock)])],
    ['WebP: a private chunk', images.webpFrom([images.vp8x(300, 200, 0), images.webpChunks(webp), images.riffChunk('GPSx', gpsBlock)])],
    ['WebP: bytes after the RIFF', Buffer.concat([webp, gpsBlock])],
    ['PNG: a private ancillary chunk', await images.rawPng({ width: 300, height: 200, before: [images.pngChunk('gpSx', gpsBlock)] })],
    ['PNG: a tEXt chunk after IDAT', await images.rawPng({ width: 300, height: 200, after: [images.pngChunk('tEXt', Buffer.concat([Buffer.from('Location\0'), gpsBlock]))] })],
    ['PNG: eXIf', await images.rawPng({ width: 300, height: 200, before: [images.pngChunk('eXIf', exif.subarray(10))] })],
    ['PNG: bytes after IEND', Buffer.concat([png, gpsBlock])],
    ['GIF: an application extension', images.gifWithBlocks(gif, [images.gifExtension(0xff, Buffer.concat([Buffer.from([11]), Buffer.from('GPSDATA1.0\0'), gpsBlock]))])],
    ['GIF: a comment', images.gifWithBlocks(gif, [images.gifExtension(0xfe, gpsBlock)])],
    ['GIF: a plain text extension', images.gifWithBlocks(gif, [images.gifExtension(0x01, Buffer.concat([Buffer.alloc(12), gpsBlock]))])],
    ['GIF: bytes after the trailer', Buffer.concat([gif, gpsBlock])]
  ]
  for (const [name, file] of cases) {
    t.ok(file.includes(GPS) || file.includes('TestPhone'), `${name}: the upload carries the marker (GPS text, or real EXIF with GPS)`)
    const inspected = await inspectImage(file)
    t.equal(inspected.pixelDataOnly, false, `${name}: not pixel data only`)
    const sent = await pipeline.prepare(file, inspected, 'auto')
    t.equal(sent.original, false, `${name}: not sent unchanged`)
    t.notOk(sent.bytes.includes(GPS), `${name}: the GPS marker is not in what is sent`)
    t.notOk(sent.bytes.includes('GPS'), `${name}: no GPS tag either`)
    t.notOk(sent.bytes.includes('Exif'), `${name}: no EXIF`)
    t.notOk(sent.bytes.includes('TestPhone'), `${name}: no camera make`)
    t.same([sent.width, sent.height], [300, 200], `${name}: the same picture`)
  }

  t.test('a PNG is re-muxed to its pixel chunks, losslessly', async t => {
    const file = await images.rawPng({ width: 300, height: 200, before: [images.pngChunk('gpSx', gpsBlock), images.pngChunk('pHYs', Buffer.alloc(9))], trailing: gpsBlock })
    const sent = await prepare(file)
    t.equal(sent.mimeType, 'image/png')
    t.ok(sent.bytes.equals(png), 'exactly IHDR, IDAT and IEND')
  })

  t.test('clean files in each format still go out unchanged', async t => {
    for (const [name, file] of [['JPEG', clean], ['progressive JPEG', progressive], ['WebP', webp], ['PNG', png], ['GIF', gif], ['greyscale JPEG', await sharp({ create: { width: 300, height: 200, channels: 3, background: '#284' } }).greyscale().jpeg().toBuffer()]] as const) {
      const sent = await prepare(file)
      t.ok(sent.original && sent.bytes.equals(file), `${name}: unchanged`)
    }
  })
})

t.test('7. CMYK and odd JPEGs are re-encoded to sRGB; frameless GIFs are refused', async t => {
  const cmyk = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#284' } }).toColourspace('cmyk').jpeg().toBuffer()
  t.equal((await sharp(cmyk).metadata()).space, 'cmyk', 'the upload is CMYK')
  const sent = await prepare(cmyk)
  t.equal(sent.original, false, 'CMYK: re-encoded')
  const meta = await sharp(sent.bytes).metadata()
  t.same([meta.space, meta.channels, meta.width, meta.height], ['srgb', 3, 300, 200], 'CMYK: sent as 3-channel sRGB')

  const rgb = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#284' } }).jpeg().toBuffer()
  const adobe = Buffer.concat([rgb.subarray(0, 2), images.jpegSegment(0xee, Buffer.from('Adobe\0\x64\0\0\0\0\x01')), rgb.subarray(2)])
  t.equal((await prepare(adobe)).original, false, 'an Adobe APP14 (colour transform) JPEG: re-encoded')

  const zeroFrames: Array<[string, Buffer]> = [
    ['a GIF with no image', images.gifRaw(64, 64)],
    ['a GIF/HTML polyglot (a comment and no image)', images.gifRaw(0x2a2f, 0x3d2a, [images.gifExtension(0xfe, Buffer.from('*/=1;<script>alert(document.domain)</script>/*'))])]
  ]
  for (const [name, file] of zeroFrames) {
    await t.rejects(inspectImage(file), { code: 'BAD_USER_INPUT', extensions: { reason: 'GIF_NO_FRAMES' }, message: /GIF holds no image/ }, name)
  }
  const polyglot = images.gifWithBlocks(await images.gif(64, 48), [images.gifExtension(0xfe, Buffer.from('<script>alert(1)</script>'))])
  const sentPolyglot = await prepare(polyglot)
  t.same([sentPolyglot.original, sentPolyglot.mimeType], [false, 'image/jpeg'], 'a GIF with a script comment: re-encoded')
  t.notOk(sentPolyglot.bytes.includes('<script'), 'no script in what is sent')
})

t.test('end to end: what Azure receives', async t => {
  const fake = await new FakeAzure().start()
  t.teardown(() => fake.close())
  const { app } = await buildAzureTestApp(t, fake)
  const clean = await images.jpeg(300, 200)
  const exif = images.exifSegment(await images.jpegWithGps(300, 200))
  for (const [name, file] of [['EXIF after the scan', images.beforeJpegEnd(clean, exif)], ['EXIF after the end', Buffer.concat([clean, exif])]] as const) {
    const before = fake.chatRequests.length
    const res = await app.inject({ method: 'POST', url: '/graphql', ...await identifyBody(file) })
    t.notOk(res.json().errors, name)
    const sent = imageFromChat(fake.chatRequests[before]!)
    t.notOk(sent.bytes.includes('GPS'), `${name}: no GPS bytes reach Azure`)
    t.notOk(sent.bytes.includes('TestPhone'), `${name}: no camera make`)
  }
  const bomb = REVIEW_PNG
  const before = fake.chatRequests.length
  const res = await app.inject({ method: 'POST', url: '/graphql', ...await identifyBody(bomb) })
  const error = res.json().errors?.[0]
  t.same([error?.extensions.code, error?.extensions.reason], ['BAD_USER_INPUT', 'IMAGE_DECODE_TOO_LARGE'], error?.message)
  t.equal(fake.chatRequests.length, before, 'no upstream call')
})
