// Hostile images against the real server process at the default IMAGE_CONCURRENCY: decompression bombs
// in every accepted format, bit depth and interlacing, extreme shapes, and the worst images the limits
// still accept. Each image gets a fresh server and is sent several times at once; the child's peak RSS
// (VmHWM from /proc) and CPU time (utime + stime from /proc/<pid>/stat) are read around the burst.
// Targets (security review, issue 7): no upload raises peak RSS by more than 250 MB, and every accepted
// upload costs under 1 s of CPU; refused ones cost next to nothing.
// Before the fix (same cases, IMAGE_CONCURRENCY = cores = 2): the review's PNG +880 MB and 3.0 s of CPU,
// the 1×50,000,000 PNG 13.2 s of CPU, the 50,000,000×1 PNG +2.5 GB, a 7000² progressive JPEG +1.1 GB.
import t from 'tap'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { FakeAzure } from '../support/fake-azure.ts'
import { identifyBody } from '../support/multipart.ts'
import * as images from '../support/images.ts'
import { countBy, identify, mb, startServer, stopServer, sleep, logLines, type Outcome } from './support.ts'

const AT_ONCE = Number(process.env.LOAD_IMAGES_AT_ONCE ?? 4)
const RSS_LIMIT = 250 * 1024 * 1024
const CPU_LIMIT_S = 1
const CACHE = join(tmpdir(), 'agrivision-load-images')
const ONLY = process.env.LOAD_IMAGES_ONLY // a substring of a case name, to run one
// One test client sends everything: the per-caller slot limit must not queue it. IMAGE_CONCURRENCY stays at its default.
// MALLOC_ARENA_MAX=2 as in the Dockerfile (glibc's per-thread arenas otherwise keep freed decode
// buffers of libvips' threads). LOAD_IMAGES_SERVER_ENV (JSON) adds to the server's environment,
// e.g. '{"MALLOC_ARENA_MAX":"8"}' to compare allocators.
const SERVER_ENV: Record<string, string> = { MALLOC_ARENA_MAX: '2', ...JSON.parse(process.env.LOAD_IMAGES_SERVER_ENV ?? '{}') }

const green = { r: 40, g: 120, b: 60 }
const greenA = { ...green, alpha: 0.5 }
const flat = (width: number, height: number, channels: 3 | 4 = 3) =>
  sharp({ create: { width, height, channels, background: channels === 4 ? greenA : green }, limitInputPixels: false })

interface Case {
  name: string
  /** Must it be accepted (OK) with the default limits? Otherwise it may be refused with BAD_USER_INPUT. */
  accepted: boolean
  make: () => Promise<Buffer>
}

const CASES: Case[] = [
  // The review's shapes, and their cousins in the other formats (refused or made harmless now).
  { name: 'PNG 7000×7000 16-bit RGBA interlaced (review)', accepted: false, make: () => images.rawPng({ width: 7000, height: 7000, bitDepth: 16, colourType: 6, interlaced: true }) },
  { name: 'PNG 7000×7000 8-bit RGB interlaced', accepted: false, make: () => images.rawPng({ width: 7000, height: 7000, interlaced: true }) },
  { name: 'PNG 7000×7000 16-bit RGBA', accepted: false, make: () => images.rawPng({ width: 7000, height: 7000, bitDepth: 16, colourType: 6 }) },
  { name: 'PNG 1×50,000,000 (review)', accepted: false, make: () => images.rawPng({ width: 1, height: 50_000_000 }) },
  { name: 'PNG 50,000,000×1', accepted: false, make: () => images.rawPng({ width: 50_000_000, height: 1 }) },
  { name: 'JPEG 7000×7000 progressive 4:4:4', accepted: false, make: () => flat(7000, 7000).jpeg({ progressive: true, chromaSubsampling: '4:4:4', quality: 90 }).toBuffer() },
  { name: 'JPEG 4000×4000 progressive CMYK', accepted: false, make: () => flat(4000, 4000).toColourspace('cmyk').jpeg({ progressive: true, quality: 90 }).toBuffer() },
  { name: 'GIF 7000×7000', accepted: false, make: () => flat(7000, 7000).gif().toBuffer() },
  { name: 'WebP 7000×7000 lossless RGBA', accepted: false, make: () => flat(7000, 7000, 4).webp({ lossless: true }).toBuffer() },
  { name: 'JPEG 1×65000', accepted: false, make: () => flat(1, 65000).jpeg().toBuffer() },
  // The worst the default limits accept (IMAGE_MAX_DECODE_BYTES 48 MiB, side 12000, aspect 20).
  { name: 'PNG 2000×2000 16-bit RGBA interlaced', accepted: true, make: () => images.rawPng({ width: 2000, height: 2000, bitDepth: 16, colourType: 6, interlaced: true }) },
  { name: 'PNG 12000×600 8-bit RGB interlaced', accepted: true, make: () => images.rawPng({ width: 12000, height: 600, colourType: 2, interlaced: true }) },
  { name: 'PNG 12000×600 16-bit RGB interlaced', accepted: false, make: () => images.rawPng({ width: 12000, height: 600, bitDepth: 16, colourType: 2, interlaced: true }) },
  { name: 'PNG 600×12000 16-bit RGB', accepted: true, make: () => images.rawPng({ width: 600, height: 12000, bitDepth: 16, colourType: 2 }) },
  { name: 'PNG 3600×3600 8-bit RGB interlaced', accepted: true, make: () => images.rawPng({ width: 3600, height: 3600, interlaced: true }) },
  { name: 'PNG 3500×3500 palette interlaced', accepted: true, make: () => images.rawPng({ width: 3500, height: 3500, colourType: 3, interlaced: true }) },
  { name: 'JPEG 2700×2700 progressive 4:4:4', accepted: true, make: () => flat(2700, 2700).jpeg({ progressive: true, chromaSubsampling: '4:4:4', quality: 90 }).toBuffer() },
  { name: 'JPEG 2000×2000 progressive CMYK', accepted: true, make: () => flat(2000, 2000).toColourspace('cmyk').jpeg({ progressive: true, quality: 90 }).toBuffer() },
  { name: 'JPEG 7000×7000 baseline (shrink-on-load)', accepted: true, make: () => flat(7000, 7000).jpeg({ quality: 90 }).toBuffer() },
  { name: 'JPEG 12000×600 baseline', accepted: true, make: () => flat(12000, 600).jpeg({ quality: 90 }).toBuffer() },
  { name: 'GIF 3500×3500', accepted: true, make: () => flat(3500, 3500).gif().toBuffer() },
  { name: 'WebP 3500×3500 lossless RGBA', accepted: true, make: () => flat(3500, 3500, 4).webp({ lossless: true }).toBuffer() },
  { name: 'WebP 12000×600 lossy', accepted: true, make: () => flat(12000, 600).webp().toBuffer() },
  // Real content, not flat colour: a noisy 12 MP photo at quality 100.
  { name: 'JPEG 4000×3000 noise q100', accepted: true, make: async () => await noise(4000, 3000).jpeg({ quality: 100 }).toBuffer() }
]

function noise (width: number, height: number) {
  const raw = Buffer.alloc(width * height * 3)
  let state = 12345
  for (let i = 0; i < raw.length; i++) { state = (state * 1103515245 + 12345) >>> 0; raw[i] = state >>> 24 }
  return sharp(raw, { raw: { width, height, channels: 3 } })
}

async function cached (c: Case): Promise<Buffer> {
  mkdirSync(CACHE, { recursive: true })
  const path = join(CACHE, `${c.name.replace(/[^A-Za-z0-9]+/g, '-')}.bin`)
  if (existsSync(path)) return readFileSync(path)
  const file = await c.make()
  writeFileSync(path, file)
  return file
}

function peakRss (pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!match) throw new Error(`no VmHWM for ${pid}`)
  return Number(match[1]) * 1024
}

/** User + system CPU seconds of a process so far (fields 14 and 15 of /proc/<pid>/stat, in clock ticks). */
function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // _SC_CLK_TCK is 100 on Linux
}

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
fake.chatFault = () => ({ kind: 'ok' })
const warmUp = await identifyBody(await images.jpegWithGps(1600, 1200))

const rows: string[] = []
t.teardown(() => { t.comment(`images at IMAGE_CONCURRENCY default, ${AT_ONCE} at once:\n${rows.join('\n')}`) })

for (const c of CASES) {
  if (ONLY !== undefined && !c.name.includes(ONLY)) continue
  t.test(c.name, { timeout: 200_000 }, async t => {
    const file = await cached(c)
    const body = await identifyBody(file)
    const server = await startServer(fake, SERVER_ENV, { maxLifetimeMs: 190_000 })
    t.teardown(() => stopServer(server))
    // Warm up: sharp and libvips loaded, a first photo through the pipeline.
    for (let i = 0; i < 2; i++) t.equal((await identify(server.origin, warmUp, { timeoutMs: 20_000 })).code, 'OK', 'warm-up')
    await sleep(200)
    const rssBefore = peakRss(server.pid)
    const cpuBefore = cpuSeconds(server.pid)
    const outcomes: Outcome[] = await Promise.all(Array.from({ length: AT_ONCE }, async () =>
      await identify(server.origin, body, { timeoutMs: 180_000 })))
    await sleep(100)
    const grown = peakRss(server.pid) - rssBefore
    const cpuPerImage = (cpuSeconds(server.pid) - cpuBefore) / AT_ONCE
    const codes = countBy(outcomes, o => o.code)
    const refusal = outcomes.find(o => o.code !== 'OK')?.body?.errors?.[0]
    rows.push(`  ${c.name} (${file.length} B): ${JSON.stringify(codes)}${refusal ? ` ${refusal.extensions?.reason ?? ''}` : ''}, ` +
      `peak RSS +${mb(grown)}, CPU ${cpuPerImage.toFixed(2)} s per image, slowest ${Math.round(Math.max(...outcomes.map(o => o.ms)))} ms`)

    t.equal(server.child.exitCode, null, 'the process is still running')
    t.same(logLines(server.output()), [], 'no error-level line in the server log')
    if (c.accepted) t.same(codes, { OK: AT_ONCE }, 'accepted')
    else t.same(Object.keys(codes).filter(code => code !== 'OK' && code !== 'BAD_USER_INPUT'), [], `OK or BAD_USER_INPUT only (${JSON.stringify(codes)})`)
    t.ok(grown < RSS_LIMIT, `peak RSS grew ${mb(grown)} (< ${mb(RSS_LIMIT)}) with ${AT_ONCE} at once`)
    t.ok(cpuPerImage < CPU_LIMIT_S, `${cpuPerImage.toFixed(2)} s of CPU per image (< ${CPU_LIMIT_S} s)`)
    if (refusal) t.notMatch(JSON.stringify(refusal), /\\u0000|base64/, 'the refusal carries no image bytes')
  })
}

t.test('all the accepted worst cases at once', { timeout: 200_000 }, async t => {
  if (ONLY !== undefined) return
  const bodies = await Promise.all(CASES.filter(c => c.accepted).map(async c => await identifyBody(await cached(c))))
  const server = await startServer(fake, SERVER_ENV, { maxLifetimeMs: 190_000 })
  t.teardown(() => stopServer(server))
  for (let i = 0; i < 2; i++) await identify(server.origin, warmUp, { timeoutMs: 20_000 })
  await sleep(200)
  const rssBefore = peakRss(server.pid)
  const outcomes = await Promise.all(bodies.map(async body => await identify(server.origin, body, { timeoutMs: 180_000 })))
  const grown = peakRss(server.pid) - rssBefore
  // The uploads themselves are held while they wait for an image slot (bounded by UPLOAD_BYTES_IN_FLIGHT,
  // by design); the target is about what decoding adds on top of them.
  const uploaded = bodies.reduce((sum, body) => sum + body.payload.length, 0)
  rows.push(`  all ${bodies.length} accepted worst cases at once (${mb(uploaded)} uploaded): ${JSON.stringify(countBy(outcomes, o => o.code))}, peak RSS +${mb(grown)}`)
  t.same(countBy(outcomes, o => o.code), { OK: bodies.length }, 'all accepted')
  t.ok(grown - uploaded < RSS_LIMIT, `peak RSS grew ${mb(grown)}, ${mb(grown - uploaded)} beyond the uploads held (< ${mb(RSS_LIMIT)})`)
})
