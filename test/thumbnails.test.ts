// Thumbnails: made off the request path from the image as sent to the model, served at a signed,
// expiring URL without caller credentials; every bad URL is 403 (never 500), a deleted one 404; under
// load they are skipped and counted, and identifications never wait for them.
import { Writable } from 'node:stream'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import sharp from 'sharp'
import { pino } from 'pino'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { buildTestApp, tempDataDir } from './helper.ts'
import { identify, sendJson } from './support/http.ts'
import { jpeg, jpegWithGps, png } from './support/images.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import { loggerOptions } from '../src/logger.ts'
import { eventLoopBusy } from '../src/thumbnails/busy.ts'
import { createUrlSigner } from '../src/thumbnails/signing.ts'
import { makeThumbnail, ThumbnailMaker } from '../src/thumbnails/maker.ts'
import type { IdentificationCompleted } from '../src/identification/events.ts'

const KEY = 'k'.repeat(16) + 'test-signing-key-0123456789'
const OTHER_KEY = 'o'.repeat(16) + 'other-signing-key-012345678'
const THUMBNAIL_URL = 'query ($id: ID!) { identification(id: $id) { id thumbnailUrl } }'

async function identified (app: FastifyInstance, file: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const res = await identify(app, file, { headers })
  if (res.body.errors) throw new Error(JSON.stringify(res.body.errors))
  return res.body.data.identifyVehicle.id
}

/** History written and every queued thumbnail made. */
async function settled (app: FastifyInstance): Promise<void> {
  await app.history!.flushed()
  await app.thumbnails!.maker.idle()
  await app.history!.flushed()
}

async function thumbnailUrl (app: FastifyInstance, id: string, headers: Record<string, string> = {}): Promise<string | null> {
  const res = await sendJson(app, { query: THUMBNAIL_URL, variables: { id } }, headers)
  if (res.body.errors) throw new Error(JSON.stringify(res.body.errors))
  return res.body.data.identification.thumbnailUrl
}

/** The path and query of an absolute URL, as a browser would request it. */
function pathOf (url: string): string {
  const parsed = new URL(url)
  return parsed.pathname + parsed.search
}

async function fetch (app: FastifyInstance, url: string) {
  return await app.inject({ method: 'GET', url })
}

async function thumbnailCount (app: FastifyInstance, result: string): Promise<number> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  const line = res.payload.split('\n').find(l => l.startsWith(`agrivision_thumbnails_total{result="${result}"}`))
  return line === undefined ? 0 : Number(line.split(' ').at(-1))
}

function capturedLog (): { logger: FastifyBaseLogger, text: () => string } {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  // The service's own logger options (query values redacted), at debug
  return { logger: pino(loggerOptions({ logLevel: 'debug' }), stream), text: () => lines.join('') }
}

t.test('a metadata-free JPEG thumbnail at a signed URL, fetched without credentials under AUTH_MODE=apikey', async t => {
  const dashboard = newApiKey('dashboard')
  const log = capturedLog()
  const app = await buildTestApp(t, {
    env: { THUMBNAIL_PRIORITY: 'low', AUTH_MODE: 'apikey', API_KEY_HASHES: dashboard.entry, URL_SIGNING_KEY: KEY },
    logger: log.logger
  })
  const auth = { 'x-api-key': dashboard.key }
  const upload = await jpegWithGps(1600, 1200)
  t.ok((await sharp(upload).metadata()).exif, 'the upload carries EXIF (with GPS)')
  const id = await identified(app, upload, auth)
  await settled(app)

  const url = await thumbnailUrl(app, id, auth)
  t.ok(url, 'a URL once the thumbnail is stored')
  t.match(url, new RegExp(`^http://localhost(:80)?/thumbnails/${id}\\.jpg\\?expires=\\d+&signature=[A-Za-z0-9_-]{43}$`), 'absolute, for the request\'s origin')
  const expires = Number(new URL(url!).searchParams.get('expires'))
  const now = Math.floor(Date.now() / 1000)
  t.ok(expires > now + 880 && expires <= now + 900, 'valid for 15 minutes by default')

  const res = await fetch(app, pathOf(url!)) // no x-api-key: the signature is the authorization
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'image/jpeg')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.match(res.headers['cache-control'], /^private, max-age=(8[89]\d|900)$/)
  const meta = await sharp(res.rawPayload).metadata()
  t.equal(meta.format, 'jpeg')
  t.ok(Math.max(meta.width!, meta.height!) <= 256, `longest side ${Math.max(meta.width!, meta.height!)} ≤ 256`)
  t.equal(Math.max(meta.width!, meta.height!), 256, 'a large photo is shrunk to 256')
  t.equal(meta.exif, undefined, 'no EXIF, so no GPS')
  t.equal(meta.xmp, undefined)
  t.equal(meta.icc, undefined)

  t.equal((await app.inject({ method: 'HEAD', url: pathOf(url!) })).statusCode, 200, 'HEAD as well')
  t.equal(await thumbnailCount(app, 'made'), 1)

  const graphqlWithoutKey = await sendJson(app, { query: THUMBNAIL_URL, variables: { id } })
  t.equal(graphqlWithoutKey.statusCode, 401, 'GraphQL itself still needs the key')

  const signature = new URL(url!).searchParams.get('signature')!
  t.notOk(log.text().includes(signature), 'the signature is never logged')
  t.notOk(log.text().includes(KEY), 'nor the key')
})

t.test('a small image is not enlarged; a transparent PNG becomes a JPEG', async t => {
  const app = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', URL_SIGNING_KEY: KEY } })
  const id = await identified(app, await png(120, 80, true))
  await settled(app)
  const res = await fetch(app, pathOf((await thumbnailUrl(app, id))!))
  t.equal(res.statusCode, 200)
  const meta = await sharp(res.rawPayload).metadata()
  t.strictSame([meta.format, meta.width, meta.height, meta.hasAlpha], ['jpeg', 120, 80, false])
})

t.test('bad URLs are 403 (never 500), a deleted identification\'s 404', async t => {
  const app = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', URL_SIGNING_KEY: KEY } })
  const id = await identified(app, await jpeg(640, 480))
  const other = await identified(app, await jpeg(320, 240))
  await settled(app)
  const url = pathOf((await thumbnailUrl(app, id))!)
  const { searchParams } = new URL(url, 'http://x')
  const expires = searchParams.get('expires')!
  const signature = searchParams.get('signature')!
  t.equal((await fetch(app, url)).statusCode, 200, 'the URL as given')

  const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
  const past = createUrlSigner({ key: Buffer.from(KEY), ttlSeconds: 900, now: () => Date.now() - 3_600_000 }).sign(id).path
  const farFuture = createUrlSigner({ key: Buffer.from(KEY), ttlSeconds: 86_400 }).sign(id).path
  const otherKey = createUrlSigner({ key: Buffer.from(OTHER_KEY), ttlSeconds: 900 }).sign(id).path
  const bad: Array<[string, string]> = [
    ['tampered signature', `/thumbnails/${id}.jpg?expires=${expires}&signature=${flip(signature, 10)}`],
    ['tampered last character', `/thumbnails/${id}.jpg?expires=${expires}&signature=${flip(signature, 42)}`],
    ['another id, the same signature', `/thumbnails/${other}.jpg?expires=${expires}&signature=${signature}`],
    ['a later expiry, the same signature', `/thumbnails/${id}.jpg?expires=${Number(expires) + 60}&signature=${signature}`],
    ['expired', past],
    ['beyond any lifetime we sign', farFuture],
    ['signed with another key', otherKey],
    ['no signature', `/thumbnails/${id}.jpg?expires=${expires}`],
    ['no expiry', `/thumbnails/${id}.jpg?signature=${signature}`],
    ['nothing', `/thumbnails/${id}.jpg`],
    ['expiry not a number', `/thumbnails/${id}.jpg?expires=soon&signature=${signature}`],
    ['expiry huge', `/thumbnails/${id}.jpg?expires=${'9'.repeat(40)}&signature=${signature}`],
    ['expiry negative', `/thumbnails/${id}.jpg?expires=-1&signature=${signature}`],
    ['signature short', `/thumbnails/${id}.jpg?expires=${expires}&signature=${signature.slice(0, 20)}`],
    ['signature padded', `/thumbnails/${id}.jpg?expires=${expires}&signature=${signature}=`],
    ['signature in base64', `/thumbnails/${id}.jpg?expires=${expires}&signature=${Buffer.from(signature, 'base64url').toString('base64')}`],
    ['parameters repeated', `${url}&expires=${expires}&signature=${signature}`],
    ['no .jpg', `/thumbnails/${id}?expires=${expires}&signature=${signature}`],
    ['.png', `/thumbnails/${id}.png?expires=${expires}&signature=${signature}`],
    ['a folder', `/thumbnails/x/${id}.jpg?expires=${expires}&signature=${signature}`],
    ['traversal', `/thumbnails/..%2F${id}.jpg?expires=${expires}&signature=${signature}`],
    ['empty name', `/thumbnails/?expires=${expires}&signature=${signature}`],
    ['over-long path', `/thumbnails/${'a'.repeat(5000)}.jpg?expires=${expires}&signature=${signature}`],
    ['over-long query', `${url}&pad=${'x'.repeat(5000)}`],
    ['unicode', `/thumbnails/${encodeURIComponent('ид')}.jpg?expires=${expires}&signature=${signature}`]
  ]
  for (const [name, path] of bad) {
    const res = await fetch(app, path)
    t.equal(res.statusCode, 403, name)
    t.equal(res.json().errors?.[0]?.extensions?.code, 'FORBIDDEN', `${name}: FORBIDDEN`)
    t.notOk(res.payload.includes(signature), `${name}: the signature is not echoed`)
    t.notOk(res.headers['www-authenticate'], `${name}: no credentials challenge`)
  }

  const deleted = await sendJson(app, { query: 'mutation ($id: ID!) { deleteIdentification(id: $id) }', variables: { id } })
  t.equal(deleted.body.data.deleteIdentification, true)
  const gone = await fetch(app, url)
  t.equal(gone.statusCode, 404, 'a valid URL for a deleted identification')
  t.equal(gone.json().errors[0].extensions.code, 'NOT_FOUND')
})

t.test('HISTORY=off: no thumbnails, no route', async t => {
  const app = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', HISTORY: 'off' } })
  t.equal(app.thumbnails, null)
  t.equal((await fetch(app, '/thumbnails/x.jpg?expires=1&signature=x')).statusCode, 404)
  const res = await identify(app, await jpeg(64, 48))
  t.notOk(res.body.errors)
})

t.test('a cached answer is a new record, with its own thumbnail', async t => {
  const app = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', URL_SIGNING_KEY: KEY, RESULT_CACHE_TTL_S: '3600' } })
  const photo = await jpeg(300, 200)
  const first = await identified(app, photo)
  await settled(app)
  const second = await identify(app, photo)
  t.equal(second.body.data.identifyVehicle.cached, true)
  const id = second.body.data.identifyVehicle.id
  await settled(app)
  t.not(id, first)
  const res = await fetch(app, pathOf((await thumbnailUrl(app, id))!))
  t.equal(res.statusCode, 200)
})

t.test('under load thumbnails are skipped and counted; identifications never wait for them', async t => {
  const app = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', URL_SIGNING_KEY: KEY } })
  let template: IdentificationCompleted | undefined
  app.identificationEvents.on('completed', event => { template ??= event })
  await identified(app, await jpeg(64, 48))
  await settled(app)
  const big = await jpeg(2048, 1536) // as large as a sent image gets: each thumbnail takes a while

  for (let i = 0; i < 40; i++) {
    app.identificationEvents.emit('completed', { ...template!, id: `load-${i}`, sentImage: big })
  }
  t.equal(app.thumbnails!.maker.waiting, 16, 'the queue is full')
  const started = performance.now()
  const res = await identify(app, await jpeg(64, 48))
  t.notOk(res.body.errors, 'the identification succeeds')
  t.ok(app.thumbnails!.maker.waiting > 0, `answered in ${Math.round(performance.now() - started)} ms, while thumbnails still wait`)
  await settled(app)
  const skipped = await thumbnailCount(app, 'skipped')
  t.ok(skipped >= 40 - 16 - 1, `every one beyond the queue is skipped (${skipped})`)
  t.equal(skipped + await thumbnailCount(app, 'made'), 1 + 40 + 1, 'the rest are made')
})

t.test('instances sharing URL_SIGNING_KEY accept each other\'s URLs; other keys do not', async t => {
  const dataDir = tempDataDir() // one database, as instances behind one address share one
  const a = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', URL_SIGNING_KEY: KEY, DATA_DIR: dataDir } })
  const b = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', URL_SIGNING_KEY: KEY, DATA_DIR: dataDir } })
  const c = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', URL_SIGNING_KEY: OTHER_KEY, DATA_DIR: dataDir } })
  const d = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', DATA_DIR: dataDir } }) // no key: a random one of its own
  const id = await identified(a, await jpeg(400, 300))
  await settled(a)
  const url = pathOf((await thumbnailUrl(a, id))!)
  t.equal((await fetch(a, url)).statusCode, 200, 'the signer')
  t.equal((await fetch(b, url)).statusCode, 200, 'another instance with the same key')
  t.equal((await fetch(c, url)).statusCode, 403, 'an instance with another key')
  t.equal((await fetch(d, url)).statusCode, 403, 'an instance with a random key')
  const fromD = pathOf((await thumbnailUrl(d, id))!)
  t.equal((await fetch(d, fromD)).statusCode, 200, 'a random key works where it was made')
  t.equal((await fetch(a, fromD)).statusCode, 403, 'and only there')
})

t.test('signing: a clock we control', async t => {
  let clock = 1_700_000_000_000
  const signer = createUrlSigner({ key: Buffer.from(KEY), ttlSeconds: 60, now: () => clock })
  const { path, expires } = signer.sign('abc-123')
  t.equal(expires, 1_700_000_060)
  const query = Object.fromEntries(new URL(path, 'http://x').searchParams)
  t.match(signer.verify('abc-123.jpg', query), { ok: true, id: 'abc-123', expires })
  t.equal(signer.secondsLeft(expires), 60)
  clock += 59_999
  t.match(signer.verify('abc-123.jpg', query), { ok: true }, 'valid until the last second')
  t.equal(signer.secondsLeft(expires), 1)
  clock += 1
  t.strictSame(signer.verify('abc-123.jpg', query), { ok: false, reason: 'expired' })
  t.strictSame(signer.verify('abc-124.jpg', query), { ok: false, reason: 'expired' }, 'expiry checked before the signature')
  clock -= 30_000
  t.strictSame(signer.verify('abc-124.jpg', query), { ok: false, reason: 'bad-signature' })
  t.strictSame(signer.verify('abc-123.jpg', null), { ok: false, reason: 'malformed' })
  t.strictSame(signer.verify('abc-123.jpg', { ...query, expires: [query.expires, query.expires] }), { ok: false, reason: 'malformed' })
  t.throws(() => signer.sign('../etc/passwd'), 'only ids are signed')
  t.equal(createUrlSigner({ key: null, ttlSeconds: 60 }).ephemeralKey, true)
})

t.test('the maker: failures counted and logged without bytes; stop waits for the queue, bounded', async t => {
  const log = capturedLog()
  const counts = { made: 0, skipped: 0, failed: 0 }
  const saved: string[] = []
  let databaseUp = false
  const maker = new ThumbnailMaker({
    save: async (id) => {
      if (!databaseUp) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
      saved.push(id)
    },
    log: log.logger,
    maxWaiting: 2,
    counts: { made: () => counts.made++, skipped: () => counts.skipped++, failed: () => counts.failed++ }
  })
  const photo = await jpeg(300, 200)
  const garbage = Buffer.from('not an image at all, with a secret-looking 0123456789abcdef')
  maker.offer({ id: 'down', image: photo, createdAt: new Date() })
  maker.offer({ id: 'garbage', image: garbage, createdAt: new Date() })
  await maker.idle()
  t.strictSame(counts, { made: 0, skipped: 0, failed: 2 })
  t.match(log.text(), /cannot store one/)
  t.match(log.text(), /cannot make one/)
  t.notOk(log.text().includes('secret-looking'), 'no image bytes in the log')
  databaseUp = true
  for (let i = 0; i < 5; i++) maker.offer({ id: `ok-${i}`, image: photo, createdAt: new Date() })
  t.equal(counts.skipped, 2, 'one being made, two waiting, the rest skipped')
  t.equal(await maker.stop(10_000), 0, 'stop drains the queue')
  t.strictSame(saved, ['ok-0', 'ok-1', 'ok-2'])
  t.equal(maker.offer({ id: 'late', image: photo, createdAt: new Date() }), false, 'nothing after stop')

  const slow = new ThumbnailMaker({ save: () => new Promise(() => {}), log: log.logger })
  slow.offer({ id: 'a', image: photo, createdAt: new Date() })
  slow.offer({ id: 'b', image: photo, createdAt: new Date() })
  t.equal(await slow.stop(50), 1, 'a hung save does not hold shutdown beyond the grace period')

  const thumb = await makeThumbnail(await jpegWithGps(100, 3000))
  const meta = await sharp(thumb).metadata()
  t.strictSame([meta.width! <= 256, meta.height, meta.exif], [true, 256, undefined])
})

t.test('without URL_SIGNING_KEY one warning at start-up, naming the variable; none with it', async t => {
  const without = capturedLog()
  await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low' }, logger: without.logger })
  const warnings = without.text().split('\n').filter(line => line.includes('URL_SIGNING_KEY is not set'))
  t.equal(warnings.length, 1)
  t.match(warnings[0], /"level":40/)
  const withKey = capturedLog()
  await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', URL_SIGNING_KEY: KEY }, logger: withKey.logger })
  t.notOk(withKey.text().includes('URL_SIGNING_KEY'))
})

t.test('thumbnail requests are rate-limited per address, with the catalogue\'s 429', async t => {
  const app = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', URL_SIGNING_KEY: KEY, GRAPHQL_RATE_LIMIT_PER_MINUTE: '3' } })
  const id = await identified(app, await jpeg(640, 480))
  await settled(app)
  const url = pathOf((await thumbnailUrl(app, id))!)
  const statuses = []
  for (let i = 0; i < 4; i++) statuses.push((await fetch(app, url)).statusCode)
  t.strictSame(statuses.slice(0, 2), [200, 200])
  const refused = await fetch(app, url)
  t.equal(refused.statusCode, 429)
  t.equal(refused.json().errors[0].extensions.code, 'RATE_LIMITED')
  t.ok(refused.headers['retry-after'], 'Retry-After')
  const bad = await fetch(app, url.replace('signature=', 'signature=x'))
  t.equal(bad.statusCode, 429, 'bad signatures count too: guessing is limited as well')
})

t.test('while the event loop is busy, thumbnails are skipped and counted', async t => {
  const app = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'low', URL_SIGNING_KEY: KEY, THUMBNAIL_SKIP_ABOVE_UTILISATION: '0.5', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' } })
  const skipped = await thumbnailCount(app, 'skipped')
  const spinUntil = performance.now() + 1100
  while (performance.now() < spinUntil) { /* a second of a busy event loop */ }
  await new Promise(resolve => setTimeout(resolve, 20)) // the sampler, overdue, sees it
  const id = await identified(app, await jpeg(640, 480))
  await settled(app)
  t.equal(await thumbnailCount(app, 'skipped'), skipped + 1, 'skipped')
  t.equal(await thumbnailUrl(app, id), null)
})

t.test('the busy signal: over the threshold after a busy second, not after an idle one; 1 never', async t => {
  const signal = eventLoopBusy(0.5)
  t.teardown(() => signal.stop())
  await new Promise(resolve => setTimeout(resolve, 1100))
  t.equal(signal.busy(), false, 'idle')
  const spinUntil = performance.now() + 1100
  while (performance.now() < spinUntil) { /* busy */ }
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(signal.busy(), true, 'busy')
  t.equal(eventLoopBusy(1).busy(), false)
})

t.test('a thumbnail saved while another connection writes waits for it and is stored (SQLite: no "database is locked")', async t => {
  // The webhook worker writes on the request thread's connection while a thumbnail is saved on the writer thread's.
  // A save that read first held a snapshot it could not upgrade once the other connection had committed: lost.
  const dir = tempDataDir()
  const app = await buildTestApp(t, { env: { DATA_DIR: dir } })
  const res = await identify(app, await jpeg(64, 48))
  const id = res.body.data.identifyVehicle.id as string
  await app.history!.flushed()
  for (let round = 0; round < 3; round++) {
    const other = new DatabaseSync(join(dir, 'history.db'))
    other.exec('PRAGMA busy_timeout = 5000')
    other.exec('BEGIN IMMEDIATE')
    other.prepare('update identifications set language = language where id = ?').run(id) // a change, committed below
    const thumbnailId = randomUUID()
    const saving = app.history!.saveThumbnail(thumbnailId, await makeThumbnail(await jpeg(64, 48)), new Date())
    await sleep(150)
    other.exec('COMMIT')
    other.close()
    await t.resolves(saving, `round ${round}: stored after the other writer's commit`)
    t.ok(await app.history!.getThumbnail(thumbnailId), `round ${round}: readable`)
  }
})
