// The history recorder: records wait in a bounded buffer while the database is down and are
// written, in order, when it returns; a full buffer drops the oldest (counted); readiness says degraded.
import t from 'tap'
import { pino } from 'pino'
import { setTimeout as sleep } from 'node:timers/promises'
import { BATCH_SIZE, GATHER_MS, HistoryRecorder, UNKNOWN_ERROR_ATTEMPTS } from '../src/history/recorder.ts'
import type { HistoryRecord } from '../src/history/records.ts'
import { buildTestApp, tempDataDir } from './helper.ts'
import { openDatabase } from '../src/database/open.ts'
import { migrateToLatest } from '../src/migrations.ts'
import { startSqliteWriter } from '../src/history/sqlite-writer.ts'
import { record } from './support/history-records.ts'
import { identify } from './support/http.ts'
import { jpeg } from './support/images.ts'
import { historyInternals } from '../src/history/plugin.ts'

const log = pino({ level: 'silent' })
const rec = (id: string) => ({ id } as HistoryRecord)

function flakyStore () {
  const store = {
    up: true,
    written: [] as string[],
    attempts: 0,
    batches: [] as number[],
    insertMany: async (records: readonly HistoryRecord[]) => {
      store.attempts++
      await sleep(1)
      if (!store.up) throw new Error('connect ECONNREFUSED 127.0.0.1:5432')
      store.batches.push(records.length)
      store.written.push(...records.map(record => record.id))
    }
  }
  return store
}

async function until (check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await sleep(10)
  }
}

t.test('writes in order; while the store is down records wait, and are written when it returns', async t => {
  const store = flakyStore()
  const recorder = new HistoryRecorder(store, 100, log)
  recorder.record(rec('a'))
  await recorder.flushed()
  t.strictSame(store.written, ['a'])
  store.up = false
  for (const id of ['b', 'c', 'd']) recorder.record(rec(id))
  await until(() => recorder.failing)
  t.equal(recorder.pending, 3, 'nothing lost while down')
  store.up = true
  await until(() => recorder.pending === 0)
  t.strictSame(store.written, ['a', 'b', 'c', 'd'], 'in order, each once')
  t.equal(store.batches.at(-1), 3, 'what waited is written as one batch')
  t.equal(recorder.failing, false)
  await recorder.stop(100)
})

t.test('batches are bounded: 200 waiting records are written 64 at a time', async t => {
  const store = flakyStore()
  store.up = false
  const recorder = new HistoryRecorder(store, 1000, log)
  for (let i = 0; i < 200; i++) recorder.record(rec(String(i)))
  await until(() => recorder.failing)
  store.up = true
  await until(() => recorder.pending === 0)
  t.strictSame(store.batches, [64, 64, 64, 8])
  t.strictSame(store.written, Array.from({ length: 200 }, (_, i) => String(i)))
  await recorder.stop(100)
})

t.test('a full buffer drops the oldest, and says so', async t => {
  const store = flakyStore()
  store.up = false
  let dropped = 0
  // Written at once (no gathering): the first record is on the wire when the others come.
  const recorder = new HistoryRecorder(store, 3, log, { dropped: () => { dropped++ } }, { gatherMs: 0 })
  for (const id of ['1', '2', '3', '4', '5']) recorder.record(rec(id))
  t.equal(recorder.pending, 3)
  t.equal(recorder.dropped, 2)
  t.equal(dropped, 2)
  store.up = true
  await until(() => recorder.pending === 0)
  t.strictSame(store.written, ['1', '4', '5'], 'the record on the wire kept (it may yet be written); the oldest others dropped')
  await recorder.stop(100)
})

t.test('a full buffer never drops the batch being written: each record is counted once, written or dropped', async t => {
  let release = (): void => {}
  const written: string[] = []
  const store = {
    insertMany: async (records: readonly HistoryRecord[]) => {
      await new Promise<void>(resolve => { release = resolve })
      written.push(...records.map(record => record.id))
    }
  }
  let writtenCount = 0
  let droppedCount = 0
  const counted = { written: () => { writtenCount++ }, dropped: () => { droppedCount++ } }
  const recorder = new HistoryRecorder(store, 2, log, counted, { gatherMs: 0 })
  recorder.record(rec('on-the-wire'))
  await sleep(5) // its batch is being written
  for (const id of ['b', 'c', 'd']) recorder.record(rec(id))
  release()
  await until(() => written.length === 1)
  await sleep(5) // the next batch is on the wire
  release()
  await recorder.flushed()
  t.ok(written.includes('on-the-wire'), 'the record on the wire is written')
  t.strictSame(written, ['on-the-wire', 'd'], 'the oldest waiting ones dropped for the newest')
  t.equal(writtenCount + droppedCount, 4, `every record counted once (${writtenCount} written, ${droppedCount} dropped)`)

  // Every buffered record on the wire: the new one is the one dropped.
  const full = new HistoryRecorder(store, 1, log, { dropped: () => { droppedCount++ } }, { gatherMs: 0 })
  full.record(rec('x'))
  await sleep(5)
  full.record(rec('y'))
  t.equal(full.dropped, 1, 'the new record dropped')
  release()
  await full.flushed()
  t.equal(full.pending, 0)
  t.strictSame(written.slice(-1), ['x'])
})

t.test('records gather for GATHER_MS into one transaction; whoever waits for one does not wait for the gathering', async t => {
  const store = flakyStore()
  const recorder = new HistoryRecorder(store, 100, log)
  for (const id of ['1', '2', '3']) recorder.record(rec(id))
  await sleep(1)
  t.equal(store.attempts, 0, 'nothing written before the window ends')
  await until(() => store.written.length === 3)
  t.strictSame(store.batches, [3], 'one transaction for the three')

  // A full batch does not wait.
  for (let i = 0; i < BATCH_SIZE; i++) recorder.record(rec(`full-${i}`))
  await sleep(2)
  t.equal(store.attempts, 2, `${BATCH_SIZE} records: written at once`)
  await recorder.flushed()

  // recordDurably and flushed() write at once (a gathering of GATHER_MS would be their latency).
  const started = performance.now()
  await recorder.recordDurably(rec('durable'), 5_000)
  t.ok(performance.now() - started < GATHER_MS, `recordDurably took ${(performance.now() - started).toFixed(1)} ms`)
  recorder.record(rec('flushed'))
  const flushStarted = performance.now()
  await recorder.flushed()
  t.ok(store.written.includes('flushed'), 'flushed() writes the gathering record')
  t.ok(performance.now() - flushStarted < GATHER_MS, `flushed() took ${(performance.now() - flushStarted).toFixed(1)} ms`)
  t.equal(await recorder.stop(100), 0)
})

t.test('stop: writes what it can, reports what it could not', async t => {
  const store = flakyStore()
  store.up = false
  const recorder = new HistoryRecorder(store, 10, log)
  recorder.record(rec('x'))
  recorder.record(rec('y'))
  await until(() => recorder.failing)
  t.equal(await recorder.stop(200), 2, 'two records unwritten at shutdown')
  const attempts = store.attempts
  await sleep(600)
  t.equal(store.attempts, attempts, 'no retries after stop')
})

t.test('in the app: a broken database degrades readiness but not identifications; records arrive when it is back', async t => {
  const app = await buildTestApp(t)
  const db = historyInternals(app.history!).store.db
  await db.schema.alterTable('identifications').renameTo('identifications_away').execute()
  const res = await identify(app, await jpeg(64, 48))
  t.notOk(res.body.errors, 'the identification is answered')
  await until(() => historyInternals(app.history!).recorder.failing, 30_000) // a bound, not a speed target: a busy CI machine is slow
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200, 'still ready: identifications work')
  t.strictSame(ready.json().degraded, ['history'])
  const list = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ identifications { edges { node { id } } } }' } })
  t.equal(list.json().errors[0].extensions.code, 'STORAGE_UNAVAILABLE')
  t.equal(list.statusCode, 503)
  t.notMatch(list.payload, /identifications_away|no such table/, 'the driver\'s message is not shown')

  await db.schema.alterTable('identifications_away').renameTo('identifications').execute()
  await until(() => !historyInternals(app.history!).recorder.failing && historyInternals(app.history!).recorder.pending === 0, 30_000)
  const found = await historyInternals(app.history!).store.get(res.body.data.identifyVehicle.id, null)
  t.ok(found, 'the buffered record was written')
  t.equal((await app.inject('/health/ready')).json().degraded, undefined)
})

t.test('SQLite: the writer thread writes what the request thread then reads; a closed writer refuses', async t => {
  const opened = openDatabase({ dialect: 'sqlite', file: `${tempDataDir()}/history.db` })
  await migrateToLatest(opened.db)
  const writer = startSqliteWriter(opened.sqlite!.raw, opened.sqlite!.file)
  const records = [record({}), record({}), record({})]
  await writer.insertMany(records)
  await writer.saveThumbnail(records[0]!.id, new Uint8Array([0xff, 0xd8, 0xff, 0xd9]), new Date())
  const rows = await opened.db.selectFrom('identifications').select(['id', 'has_thumbnail']).orderBy('id').execute()
  t.strictSame(rows.map(row => row.id), records.map(r => r.id).sort(), 'written by the worker, read here')
  t.equal(rows.find(row => row.id === records[0]!.id)?.has_thumbnail, 1)
  await writer.close()
  await opened.close()
  await t.rejects(writer.insertMany([record({})]), /closed/)
})

t.test('recordDurably: resolves when its record is written, at once while the database is down, never after maxWaitMs', async t => {
  const store = flakyStore()
  let gate: () => void = () => {}
  const slow = {
    insertMany: async (records: readonly HistoryRecord[]) => {
      await new Promise<void>(resolve => { gate = resolve })
      await store.insertMany(records)
    }
  }
  const recorder = new HistoryRecorder(slow, 100, log)
  let done = false
  const waiting = recorder.recordDurably(rec('a'), 10_000).then(() => { done = true })
  await sleep(50)
  t.notOk(done, 'waits while its batch is being written')
  gate()
  await waiting
  t.same(store.written, ['a'], 'resolved once written')

  const capped = new HistoryRecorder({ insertMany: async () => { await sleep(5_000) } }, 100, log)
  const started = Date.now()
  await capped.recordDurably(rec('b'), 200)
  t.ok(Date.now() - started < 1_000, 'never longer than maxWaitMs')

  store.up = false
  const down = new HistoryRecorder(store, 100, log)
  const first = Date.now()
  await down.recordDurably(rec('c'), 10_000)
  t.ok(Date.now() - first < 1_000, 'a failed write releases the waiting answer')
  t.ok(down.failing)
  const second = Date.now()
  await down.recordDurably(rec('d'), 10_000)
  t.ok(Date.now() - second < 50, 'and while the database is down, nothing waits')
  t.equal(down.pending, 2, 'the records wait in the buffer')
  await down.stop(10)
  await capped.stop(10)
})

/** A store whose records marked `bad` are refused for their data, as node:sqlite refuses a CHECK constraint. */
function refusingStore () {
  const store = {
    written: [] as string[],
    calls: [] as number[],
    insertMany: async (records: readonly HistoryRecord[]) => {
      store.calls.push(records.length)
      await sleep(1)
      if (records.some(record => record.id.startsWith('bad'))) {
        throw Object.assign(new Error('CHECK constraint failed: secret content here'), { code: 'ERR_SQLITE_ERROR', errcode: 275, errstr: 'constraint failed' })
      }
      store.written.push(...records.map(record => record.id))
    }
  }
  return store
}

function capturingLog () {
  const lines: any[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  return { logger, lines }
}

t.test('a batch refused for its data is written record by record; the refused one is set aside, logged by id and reason only', async t => {
  const store = refusingStore()
  const { logger, lines } = capturingLog()
  let rejected = 0
  const recorder = new HistoryRecorder(store, 100, logger, { rejected: () => { rejected++ } })
  store.calls.length = 0
  for (const id of ['a', 'b', 'bad-1', 'c']) recorder.record(rec(id))
  await recorder.flushed()
  t.strictSame(store.written, ['a', 'b', 'c'], 'the others written, in order')
  t.equal(recorder.rejected, 1)
  t.equal(rejected, 1, 'counted')
  t.equal(recorder.failing, false, 'not an outage')
  t.equal(recorder.pending, 0)
  const line = lines.find(l => l.identification === 'bad-1')
  t.match(line, { level: 50, reason: { sqlite: 275, error: 'constraint failed' } })
  t.notMatch(JSON.stringify(lines), /secret content/, 'the driver\'s message (it may quote the record) is not logged')
  const calls = store.calls.length
  await sleep(600)
  t.equal(store.calls.length, calls, 'nothing retried')
  await recorder.stop(100)
})

t.test('shutdown says what happened: the database unreachable, or still writing when the time was up', async t => {
  const down = flakyStore()
  down.up = false
  const first = capturingLog()
  const unreachable = new HistoryRecorder(down, 10, first.logger)
  unreachable.record(rec('x'))
  await until(() => unreachable.failing)
  t.equal(await unreachable.stop(50), 1)
  t.ok(first.lines.some(l => /not written at shutdown: the database was unreachable/.test(l.msg)), 'unreachable')

  const second = capturingLog()
  const slow = new HistoryRecorder({ insertMany: async () => { await sleep(2_000) } }, 10, second.logger)
  slow.record(rec('y'))
  t.equal(await slow.stop(50), 1)
  const line = second.lines.find(l => /not written at shutdown/.test(l.msg))
  t.match(line?.msg, /still being written when the shutdown grace period ended/, 'not blamed on the database')
})

t.test('a record made right after a waited-for one is written without waiting for another', async t => {
  for (const first of ['ok-1', 'bad-1']) { // written, or set aside: either releases the waiting caller as the drain ends
    const store = refusingStore()
    const recorder = new HistoryRecorder(store, 100, log)
    await recorder.recordDurably(rec(first), 10_000)
    recorder.record(rec('next')) // the writer has just released the first and is finishing its drain
    await until(() => store.written.includes('next'), 2_000)
    t.equal(await recorder.stop(100), 0, `${first}: nothing left at shutdown`)
  }
})

t.test('stop: a write that fails during the shutdown flush is tried again within the grace, not given up after one try', async t => {
  const store = flakyStore()
  const recorder = new HistoryRecorder(store, 10, log)
  recorder.record(rec('warm'))
  await recorder.flushed()
  // The database drops the connection just as the last answers' records are written, and is back 300 ms later.
  store.up = false
  recorder.record(rec('answered-just-before-sigterm'))
  setTimeout(() => { store.up = true }, 300)
  t.equal(await recorder.stop(3000), 0, 'nothing left unwritten')
  t.same(store.written, ['warm', 'answered-just-before-sigterm'])
  t.ok(store.attempts >= 3, `tried again (${store.attempts} attempts)`)
})

t.test('stop: records waiting with no drain running (none pending a retry) are written too', async t => {
  // A record queued while a drain is finishing (after its last look at the buffer, before it lets go): here it is
  // queued from a microtask the drain's last write makes, which runs between the two.
  const store = flakyStore()
  let late: HistoryRecorder | null = null
  const recorder = new HistoryRecorder(store, 10, log, {
    written: () => { if (late !== null) { const r = late; late = null; queueMicrotask(() => { r.record(rec('queued-in-the-gap')) }) } }
  })
  late = recorder
  recorder.record(rec('first'))
  await recorder.flushed()
  await sleep(50)
  t.same(store.written, ['first', 'queued-in-the-gap'], 'written by a drain of its own, without waiting for another record')
  t.equal(await recorder.stop(1000), 0)

  // And shutdown writes whatever waits, whether or not a retry was pending.
  const idle = flakyStore()
  const another = new HistoryRecorder(idle, 10, log, {
    written: () => { if (late !== null) { const r = late; late = null; queueMicrotask(() => { r.record(rec('gap-at-shutdown')) }) } }
  })
  late = another
  another.record(rec('last'))
  t.equal(await another.stop(1000), 0, 'stop leaves nothing behind')
  t.same(idle.written, ['last', 'gap-at-shutdown'])
})

/** A store whose `poison` records the database refuses with its own SQLSTATE (a trigger's, unknown to the code). */
function poisonStore (probe: (() => Promise<void>) | undefined) {
  const store = {
    written: [] as string[],
    alone: new Map<string, number>(),
    probes: 0,
    insertMany: async (records: readonly HistoryRecord[]) => {
      await sleep(1)
      if (records.length === 1) store.alone.set(records[0]!.id, (store.alone.get(records[0]!.id) ?? 0) + 1)
      if (records.some(record => record.id.startsWith('poison'))) {
        throw Object.assign(new Error('refused: secret content'), { code: 'AB123', severity: 'ERROR' })
      }
      store.written.push(...records.map(record => record.id))
    },
    ...(probe === undefined ? {} : { probe: async () => { store.probes++; await probe() } })
  }
  return store
}

t.test('unknown errors: a whole batch of refused records, a good one behind it: it shows the database writes; all set aside in one pass', async t => {
  const store = poisonStore(async () => {})
  const { logger, lines } = capturingLog()
  const recorder = new HistoryRecorder(store, 1_000, logger)
  const poison = Array.from({ length: BATCH_SIZE }, (_, i) => `poison-${i}`)
  const started = Date.now()
  for (const id of [...poison, 'good-1', 'good-2']) recorder.record(rec(id))
  await until(() => recorder.pending === 0)
  t.ok(Date.now() - started < 5_000, `one pass, rounds of retries (${Date.now() - started} ms)`)
  t.strictSame(store.written, ['good-1', 'good-2'], 'the good ones written')
  t.equal(recorder.rejected, BATCH_SIZE, 'every refused one set aside')
  t.equal(recorder.failing, false)
  // The first is also a batch of its own: the writer starts as soon as it is recorded.
  t.ok(poison.every(id => (store.alone.get(id) ?? 0) >= UNKNOWN_ERROR_ATTEMPTS), `each tried alone ${UNKNOWN_ERROR_ATTEMPTS} times before it was set aside`)
  t.ok(store.probes > 0, 'the database was probed')
  t.match(lines.find(l => l.identification === 'poison-0'), { level: 50, reason: { sqlstate: 'AB123', unrecognised: String } })
  t.notMatch(JSON.stringify(lines), /secret content/, 'no database message in the log')
  await recorder.stop(100)
})

t.test('unknown errors: without a probe, or with one that fails, they are an outage: nothing set aside', async t => {
  for (const [what, probe] of [['no probe', undefined], ['the probe fails', async () => { throw new Error('connect ECONNREFUSED') }]] as const) {
    const store = poisonStore(probe)
    const recorder = new HistoryRecorder(store, 100, log)
    for (const id of ['poison-1', 'good-1']) recorder.record(rec(id))
    await until(() => recorder.failing)
    await sleep(300)
    t.equal(recorder.rejected, 0, `${what}: nothing set aside`)
    t.equal(recorder.pending, 2, `${what}: both wait, in order`)
    t.strictSame(store.written, [], what)
    t.equal(await recorder.stop(10), 2)
  }
})
