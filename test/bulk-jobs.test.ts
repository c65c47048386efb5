// Bulk jobs on SQLite: the shared cases (test/support/bulk-cases.ts), and a claim while another connection writes.
import { join } from 'node:path'
import t from 'tap'
import { tempDataDir } from './helper.ts'
import { bulkCases } from './support/bulk-cases.ts'
import { bulkClaimCases } from './support/bulk-claim-cases.ts'
import { holdWrite } from './support/sqlite-other-writer.ts'
import { openDatabase } from '../src/database/open.ts'
import { migrateToLatest } from '../src/migrations.ts'
import { BulkStore } from '../src/bulk/store.ts'
import type { BulkTables } from '../src/bulk/tables.ts'

bulkCases(t, async () => ({}), tempDataDir)
bulkClaimCases(t, async () => ({ dialect: 'sqlite', file: join(tempDataDir(), 'history.db') }))

t.test('a job claimed while another connection writes waits for it and is claimed (SQLite: no "database is locked")', async t => {
  // The worker claims on the request thread's connection while the history writer thread writes (records, their
  // bulk items) on its own. A claim that read, then wrote, in one transaction failed at once instead of waiting.
  const file = join(tempDataDir(), 'history.db')
  const opened = openDatabase<BulkTables>({ dialect: 'sqlite', file })
  t.teardown(() => opened.close())
  await migrateToLatest(opened.db)
  const store = new BulkStore(opened.db, false)
  for (let round = 0; round < 3; round++) {
    const id = `job-${round}`
    await store.createJob({
      id, callerId: 'alice', callerKind: 'apikey', status: 'RECEIVED', mode: 'ONLINE', detail: 'auto', language: 'en', instructions: '', archivePath: 'x'
    }, [])
    const marker = 1_000_000 + round
    const other = await holdWrite(file, 'update bulk_jobs set updated_at = ? where id = ?', [marker, id], 150)
    t.equal(other.changes, 1, `round ${round}: the other connection changed the job, not yet committed`)
    const claimed = await store.claimJob('owner-1', 60_000).finally(async () => { await other.committed })
    t.equal(claimed?.id, id, `round ${round}: the due job claimed (earlier rounds' are leased)`)
    t.equal(claimed?.leased_by, 'owner-1')
    t.ok(Number(claimed?.lease_until) > Date.now(), 'leased for a while')
    t.equal(Number(claimed?.updated_at), marker, 'read after the other connection\'s commit')
  }
  t.equal(await store.claimJob('owner-2', 60_000), undefined, 'every job leased: nothing to claim')

  // The job's other transactions write first already: they wait too.
  const touch = 'update bulk_jobs set updated_at = updated_at + 1 where id = ?'
  let other = await holdWrite(file, touch, ['job-0'], 150)
  await store.createJob({
    id: 'job-items', callerId: 'alice', callerKind: 'apikey', status: 'RECEIVED', mode: 'ONLINE', detail: 'auto', language: 'en', instructions: '', archivePath: 'x'
  }, [{ id: 'item-1', seq: 0, name: 'a.jpg', entryIndex: 0, status: 'PENDING', code: null }]).finally(async () => { await other.committed })
  const image = { sha256: 'x', mimeType: 'image/jpeg', bytes: 1, width: 1, height: 1, sentMimeType: 'image/jpeg' }
  await store.markPrepared('item-1', { ...image, sentBytes: 1, sentWidth: 1, sentHeight: 1, estimatedImageTokens: 85, detailUsed: 'LOW', looks: 1 })
  other = await holdWrite(file, touch, ['job-0'], 150)
  await store.createChunk('job-items', { id: 'chunk-1', status: 'SUBMITTED', lines: 1, bytes: 1, look: 1 }, ['item-1'])
    .finally(async () => { await other.committed })
  t.equal((await store.chunkItems('chunk-1', 10)).length, 1, 'a chunk and its item, while another connection wrote')
  other = await holdWrite(file, touch, ['job-0'], 150)
  let also = 0
  const ended = await store.finishJob('job-0', 'COMPLETED', null, async () => { also++ }).finally(async () => { await other.committed })
  t.equal(ended, true, 'a job ended, while another connection wrote')
  t.equal(also, 1, 'its other rows written once')
})
