// Thumbnails on PostgreSQL (test/thumbnails.test.ts: SQLite): made and served for a recorded identification; saved
// before its record is written (the record then says it has one); none kept for a withdrawn record.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import sharp from 'sharp'
import { buildTestApp, tempDataDir } from './helper.ts'
import { identify, sendJson } from './support/http.ts'
import { jpeg } from './support/images.ts'
import { record } from './support/history-records.ts'
import { startPostgres, createDatabase } from './support/postgres.ts'
import { historyInternals } from '../src/history/plugin.ts'
import { makeThumbnail } from '../src/thumbnails/maker.ts'

const KEY = 'k'.repeat(16) + 'test-signing-key-0123456789'
const THUMBNAIL_URL = 'query ($id: ID!) { identification(id: $id) { id thumbnailUrl } }'

const server = await startPostgres(t)
let databases = 0
const env = async (): Promise<Record<string, string>> => ({
  DATABASE_URL: await createDatabase(server.url, `thumbnails_${++databases}`),
  DATA_DIR: tempDataDir(),
  THUMBNAIL_PRIORITY: 'low',
  URL_SIGNING_KEY: KEY
})

t.test('PostgreSQL: a recorded identification\'s thumbnail is stored and served at its signed URL', async t => {
  const app = await buildTestApp(t, { env: await env() })
  const res = await identify(app, await jpeg(640, 480))
  t.notOk(res.body.errors, JSON.stringify(res.body.errors))
  const id = res.body.data.identifyVehicle.id as string
  await app.history!.flushed()
  await app.thumbnails!.maker.idle()
  await app.history!.flushed()
  const found = await sendJson(app, { query: THUMBNAIL_URL, variables: { id } })
  const url = found.body.data.identification.thumbnailUrl as string | null
  t.ok(url, 'a URL once the thumbnail is stored')
  const parsed = new URL(url!)
  const served = await app.inject({ method: 'GET', url: parsed.pathname + parsed.search })
  t.equal(served.statusCode, 200)
  t.equal(served.headers['content-type'], 'image/jpeg')
  const meta = await sharp(served.rawPayload).metadata()
  t.strictSame([meta.format, Math.max(meta.width!, meta.height!)], ['jpeg', 256])
})

t.test('PostgreSQL: a thumbnail saved before its record, or again, is kept once; a withdrawn record keeps none', async t => {
  const app = await buildTestApp(t, { env: await env() })
  const { store } = historyInternals(app.history!)
  const thumbnail = await makeThumbnail(await jpeg(64, 48))
  const flag = async (id: string) => (await store.db.selectFrom('identifications').select('has_thumbnail').where('id', '=', id).executeTakeFirst())?.has_thumbnail

  // No record yet (it waits in the buffer): the thumbnail is kept, and the record written later says it has one.
  const early = randomUUID()
  await app.history!.saveThumbnail(early, thumbnail, new Date())
  t.same(await app.history!.getThumbnail(early), Buffer.from(thumbnail), 'stored without its record')
  await store.insert(record({ id: early }))
  t.equal(Number(await flag(early)), 1, 'the record written after it: has_thumbnail')
  const other = await makeThumbnail(await jpeg(32, 24))
  await app.history!.saveThumbnail(early, other, new Date())
  t.same(await app.history!.getThumbnail(early), Buffer.from(thumbnail), 'saved again: the first kept')

  // A record first, then its thumbnail: the flag set by the save.
  const later = randomUUID()
  await store.insert(record({ id: later }))
  t.equal(Number(await flag(later)), 0)
  await app.history!.saveThumbnail(later, thumbnail, new Date())
  t.equal(Number(await flag(later)), 1, 'has_thumbnail set by the save')
  t.ok(await app.history!.getThumbnail(later))

  // Withdrawn while its thumbnail was being made: none kept, the flag not set.
  const withdrawn = randomUUID()
  await store.insert(record({ id: withdrawn }))
  t.equal(await app.history!.delete(withdrawn, null), true)
  await app.history!.saveThumbnail(withdrawn, thumbnail, new Date())
  t.equal(await app.history!.getThumbnail(withdrawn), undefined, 'no thumbnail for a withdrawn record')
  t.equal(Number(await flag(withdrawn)), 0, 'its flag not set')
})
