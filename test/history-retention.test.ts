// Retention: records older than HISTORY_RETENTION_DAYS go (with their filter keys and thumbnails) at
// start-up and hourly, in batches; younger ones stay; usage keeps what the purged ones cost.
import t from 'tap'
import { buildTestApp, tempDataDir } from './helper.ts'
import { openDatabase } from '../src/database/open.ts'
import { migrateToLatest } from '../src/migrations.ts'
import { HistoryStore } from '../src/history/store.ts'
import { record } from './support/history-records.ts'
import { historyInternals } from '../src/history/plugin.ts'

const DAY = 86_400_000

t.test('records past retention are purged at start-up, in batches, with what hangs off them', async t => {
  const dataDir = tempDataDir()
  const file = `${dataDir}/history.db`
  const seeded = openDatabase({ dialect: 'sqlite', file })
  await migrateToLatest(seeded.db)
  const store = new HistoryStore(seeded.db)
  const old = []
  for (let i = 0; i < 2_500; i++) { // more than one batch of 1,000
    const rec = record({ createdAt: new Date(Date.now() - 40 * DAY - i * 1000) })
    old.push(rec.id)
    await store.insert(rec)
  }
  await store.saveThumbnail(old[0]!, new Uint8Array([0xff, 0xd8, 0xff]), new Date())
  const young = record({ createdAt: new Date(Date.now() - 10 * DAY) })
  await store.insert(young)
  await seeded.close()

  const app = await buildTestApp(t, { env: { DATA_DIR: dataDir, HISTORY_RETENTION_DAYS: '30' } })
  const db = historyInternals(app.history!).store.db
  const deadline = Date.now() + 20_000
  while ((await db.selectFrom('identifications').select(eb => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n !== 1) {
    if (Date.now() > deadline) throw new Error('not purged')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  t.strictSame((await db.selectFrom('identifications').select('id').execute()).map(row => row.id), [young.id], 'only the young one is left')
  t.equal((await db.selectFrom('identification_categories').select('identification_id').execute()).length, 1, 'filter keys purged too')
  t.equal(await historyInternals(app.history!).store.getThumbnail(old[0]!), undefined, 'thumbnails purged too')
  const spent = await historyInternals(app.history!).store.usage(new Date(Date.now() - 60 * DAY), new Date(), null, 'CALLER')
  t.equal(spent[0]?.identifications, 2_501, 'usage still counts the purged records')
})

t.test('expired idempotency keys are purged', async t => {
  const app = await buildTestApp(t)
  const db = historyInternals(app.history!).store.db
  const now = Date.now()
  await db.insertInto('idempotency_keys').values([
    { caller_id: 'a', key: 'old', fingerprint: 'f', state: 'done', identification_id: null, created_at: now - 2 * DAY, expires_at: now - DAY },
    { caller_id: 'a', key: 'new', fingerprint: 'f', state: 'done', identification_id: null, created_at: now, expires_at: now + DAY }
  ]).execute()
  await historyInternals(app.history!).store.purgeExpiredIdempotencyKeys(new Date())
  t.strictSame((await db.selectFrom('idempotency_keys').select('key').execute()).map(row => row.key), ['new'])
})
