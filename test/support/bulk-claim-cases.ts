// BulkStore.claimJob's rules, the same on each database (test/bulk-jobs.test.ts: SQLite;
// test/bulk-jobs-postgres.test.ts: PostgreSQL): the due job first by next_run_at, a leased one not twice, the
// excluded skipped, a finished or future one never, a lapsed lease taken over.
import type { Test } from 'tap'
import { openDatabase } from '../../src/database/open.ts'
import type { DatabaseTarget } from '../../src/database/config.ts'
import { migrateToLatest } from '../../src/migrations.ts'
import { BulkStore } from '../../src/bulk/store.ts'
import type { BulkJobStatus, BulkTables } from '../../src/bulk/tables.ts'

/** A migrated database with a BulkStore whose clock the test moves. */
export async function claimStore (t: Test, target: DatabaseTarget): Promise<{
  store: BulkStore, clock: { now: number }, addJob: (id: string, status?: BulkJobStatus) => Promise<void>
}> {
  const opened = openDatabase<BulkTables>(target)
  t.teardown(() => opened.close())
  await migrateToLatest(opened.db)
  const clock = { now: 1_000_000 }
  const store = new BulkStore(opened.db, target.dialect === 'postgres', () => clock.now)
  const addJob = async (id: string, status: BulkJobStatus = 'RECEIVED'): Promise<void> => {
    await store.createJob({
      id, callerId: 'alice', callerKind: 'apikey', status, mode: 'ONLINE', detail: 'auto', language: 'en', instructions: '', archivePath: 'x'
    }, [])
  }
  return { store, clock, addJob }
}

export function bulkClaimCases (t: Test, target: () => Promise<DatabaseTarget>): void {
  t.test('claimJob: the due job first, a leased one not twice, the excluded skipped, a finished or future one never, a lapsed lease taken over', async t => {
    const { store, clock, addJob } = await claimStore(t, await target())
    await addJob('done', 'COMPLETED')
    clock.now += 10
    await addJob('first')
    clock.now += 10
    await addJob('second')
    clock.now += 10
    await addJob('future')
    await store.db.updateTable('bulk_jobs').set({ next_run_at: clock.now + 60_000 }).where('id', '=', 'future').execute()

    const a = await store.claimJob('owner-a', 5_000)
    t.equal(a?.id, 'first', 'the earliest next_run_at')
    t.equal(a?.leased_by, 'owner-a')
    t.equal(Number(a?.lease_until), clock.now + 5_000)
    t.equal(a?.status, 'RECEIVED', 'the whole row')
    t.equal((await store.claimJob('owner-b', 5_000, ['second']))?.id, undefined, '"first" leased, "second" excluded')
    const b = await store.claimJob('owner-b', 5_000)
    t.equal(b?.id, 'second')
    t.equal(await store.claimJob('owner-c', 5_000), undefined, 'both leased; the finished and the future one never')

    clock.now += 5_001
    const c = await store.claimJob('owner-c', 5_000, ['second'])
    t.equal(c?.id, 'first', 'a lapsed lease is taken over')
    t.equal(c?.leased_by, 'owner-c')
    t.equal(await store.renewLease('first', 'owner-a', 5_000), false, 'the old owner lost it')
    clock.now += 60_000
    const owners = []
    for (let i = 0; i < 4; i++) owners.push((await store.claimJob('owner-d', 5_000))?.id)
    t.strictSame(owners, ['first', 'second', 'future', undefined], 'every lease lapsed, the future one due: in next_run_at order')
  })
}
