// Writes every identification (success or coded failure) to history, off the request path: records
// queue in a bounded buffer and one writer drains it in order, what has accumulated as one batch (one
// transaction of a few statements, so that a busy minute costs fewer commits, not more). While the database is down the buffer
// holds them (the oldest is dropped, logged and counted, when it is full) and the writer retries with
// backoff; identifications never wait for, or fail because of, the database.
// A batch refused for its data (write-errors.ts: a constraint, a value the database will not take) is
// written again record by record; a record refused on its own is set aside (logged by id and reason, never
// its content, and counted) with its webhook events, which share its transaction, and the queue moves on.
// An error the database raises that is known to be neither the record's nor the database's state (a trigger's
// own code, a function refusing a value) is not retried for ever either: when the database still answers (a
// probe), the batch is written record by record too, and a record that keeps failing alone while the database
// writes another record is set aside like a refused one. With no record written, nothing is set aside: an
// error every record meets is the database's, and is retried like an outage.
import type { FastifyBaseLogger } from 'fastify'
import type { HistoryRecord } from './records.ts'
import { classifyWriteError } from '../database/write-errors.ts'

export interface RecorderStore {
  insertMany (records: readonly HistoryRecord[]): Promise<void>
  /** Resolves when the database answers a trivial query. Without it, an unknown write error is taken for an outage. */
  probe?: () => Promise<void>
}

export interface RecorderHooks {
  written?: () => void
  dropped?: () => void
  /** A record whose data the database refused, set aside. */
  rejected?: () => void
}

/** Records per transaction at most. */
export const BATCH_SIZE = 64
/**
 * How long a record waits for others to share its transaction when the writer is idle. A transaction's own cost
 * (the commit, the messages to and from SQLite's writer thread or PostgreSQL) is most of a lone record's: at 150
 * identifications a second, writing each alone cost SQLite's thread ~440 µs a record. Records someone waits for
 * (recordDurably, writtenFor, flushed, stop) are written at once.
 */
export const GATHER_MS = 20
const RETRY_MIN_MS = 250
const RETRY_MAX_MS = 30_000
/** A record failing alone with an unknown error is tried this many times in all before it may be set aside. */
export const UNKNOWN_ERROR_ATTEMPTS = 3

type Alone =
  | { kind: 'written' }
  | { kind: 'refused' } // set aside for its data
  | { kind: 'unknown', reason: Record<string, string | number> }
  | { kind: 'down' } // #unavailable has been called

const NONE: ReadonlySet<HistoryRecord> = new Set()

export class HistoryRecorder {
  readonly #store: RecorderStore
  readonly #capacity: number
  readonly #log: FastifyBaseLogger
  readonly #hooks: RecorderHooks
  readonly #buffer: HistoryRecord[] = []
  /** Who waits for a record's batch (recordDurably, writtenFor). */
  readonly #waiters = new Map<HistoryRecord, Array<() => void>>()
  #draining: Promise<void> | null = null
  /** The batch on the wire: never dropped from a full buffer (it may be written). */
  #writing: ReadonlySet<HistoryRecord> = NONE
  #retryDelay = RETRY_MIN_MS
  #retryTimer: NodeJS.Timeout | null = null
  /** Set while records gather for the next batch (GATHER_MS). */
  #gatherTimer: NodeJS.Timeout | null = null
  #failing = false
  #stopped = false
  #dropped = 0
  #rejected = 0
  /** Why the last write failed while failing (the driver's code): for the shutdown message. */
  #lastFailure: Record<string, string | number> = {}

  readonly #gatherMs: number

  /** `gatherMs`: how long records gather for a batch when the writer is idle (0: each is written at once). */
  constructor (store: RecorderStore, capacity: number, log: FastifyBaseLogger, hooks: RecorderHooks = {}, { gatherMs = GATHER_MS } = {}) {
    this.#gatherMs = gatherMs
    this.#store = store
    this.#capacity = capacity
    this.#log = log
    this.#hooks = hooks
  }

  /** Records waiting to be written. */
  get pending (): number { return this.#buffer.length }
  /** Records dropped because the buffer was full. */
  get dropped (): number { return this.#dropped }
  /** Records set aside because the database refused their data. */
  get rejected (): number { return this.#rejected }
  /** True while the last write failed (the database is unreachable): readiness reports history as degraded. */
  get failing (): boolean { return this.#failing }

  record (record: HistoryRecord): void {
    if (this.#buffer.length >= this.#capacity) {
      // The oldest record not being written right now (one in the batch on the wire may yet be written: dropping it
      // would count it as both dropped and written); the new one when every buffered record is on the wire.
      const index = this.#buffer.findIndex(buffered => !this.#writing.has(buffered))
      const dropped = index === -1 ? record : this.#buffer.splice(index, 1)[0] as HistoryRecord
      this.#release(dropped)
      this.#dropped++
      this.#hooks.dropped?.()
      this.#log.error({ identification: dropped.id, capacity: this.#capacity },
        'history buffer full (the database has been unreachable): the oldest unwritten record is dropped')
      if (dropped === record) return
    }
    this.#buffer.push(record)
    if (this.#retryTimer === null) this.#gather()
  }

  /** The next batch: after GATHER_MS unless a write is under way (its end takes what came meanwhile) or it is full. */
  #gather (): void {
    if (this.#draining !== null || this.#gatherTimer !== null) {
      if (this.#buffer.length >= BATCH_SIZE) this.#writeNow()
      return
    }
    if (this.#buffer.length >= BATCH_SIZE || this.#gatherMs === 0) { this.#drain(); return }
    this.#gatherTimer = setTimeout(() => { this.#gatherTimer = null; this.#drain() }, this.#gatherMs)
  }

  /** Someone waits for the buffer: no more gathering. */
  #writeNow (): void {
    if (this.#gatherTimer === null) return
    clearTimeout(this.#gatherTimer)
    this.#gatherTimer = null
    if (this.#retryTimer === null) this.#drain()
  }

  /**
   * Records, and resolves once the record is written: at most `maxWaitMs` later, and at once when the database
   * is failing (the record then waits in the buffer like any other). For answers that must not outrun their record.
   */
  async recordDurably (record: HistoryRecord, maxWaitMs: number): Promise<void> {
    if (this.#failing || this.#stopped) { this.record(record); return }
    const written = this.#waitFor(record, maxWaitMs)
    this.record(record)
    await written
  }

  /**
   * Read-your-writes: resolves once this instance's unwritten record `id` is written (or set aside, or dropped), at
   * most `maxWaitMs` later; at once when none waits here (written already, another instance's, not the caller's:
   * `callerId` null matches any) or the database is failing. False: the record still waits in this buffer.
   */
  async writtenFor (id: string, callerId: string | null, maxWaitMs: number): Promise<boolean> {
    const pendingHere = (): HistoryRecord | undefined =>
      this.#buffer.find(pending => pending.id === id && (callerId === null || pending.callerId === callerId))
    const record = pendingHere()
    if (record === undefined) return true
    if (!this.#failing && !this.#stopped && maxWaitMs > 0) await this.#waitFor(record, maxWaitMs)
    return !this.#buffer.includes(record)
  }

  async #waitFor (record: HistoryRecord, maxWaitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    let done: () => void = () => {}
    await new Promise<void>(resolve => {
      done = resolve
      this.#waiters.set(record, [...(this.#waiters.get(record) ?? []), resolve])
      timer = setTimeout(resolve, maxWaitMs)
      // recordDurably registers before it records: the record then finds no gathering to wait for.
      queueMicrotask(() => this.#writeNow())
    })
    clearTimeout(timer)
    const others = (this.#waiters.get(record) ?? []).filter(waiting => waiting !== done)
    if (others.length > 0) this.#waiters.set(record, others)
    else this.#waiters.delete(record)
  }

  #release (record: HistoryRecord): void {
    const waiting = this.#waiters.get(record)
    if (waiting === undefined) return
    this.#waiters.delete(record)
    for (const resolve of waiting) resolve()
  }

  /** Resolves once everything recorded so far is written (or the writer gave up for now). */
  async flushed (): Promise<void> {
    this.#writeNow()
    while (this.#draining !== null) await this.#draining
  }

  /**
   * Stops; writes what it can within `graceMs`, trying again after a failed write (a dropped connection, a
   * deadlock: one failure must not lose what was answered) until the grace is over; says how many records were not written.
   */
  async stop (graceMs: number): Promise<number> {
    this.#stopped = true
    const deadline = Date.now() + graceMs
    let timer: NodeJS.Timeout | undefined
    const until = (ms: number): Promise<void> => new Promise(resolve => { timer = setTimeout(resolve, Math.max(0, ms)) })
    // Always a drain of its own (not only when a retry was pending): whatever waits in the buffer is written now.
    if (this.#gatherTimer !== null) { clearTimeout(this.#gatherTimer); this.#gatherTimer = null }
    while (this.#buffer.length > 0 && Date.now() < deadline) {
      if (this.#retryTimer !== null) { clearTimeout(this.#retryTimer); this.#retryTimer = null }
      this.#drain()
      await Promise.race([this.flushed(), until(deadline - Date.now())])
      clearTimeout(timer)
      if (this.#buffer.length > 0 && this.#draining === null) { // the write failed: a moment, then again
        await until(Math.min(RETRY_MIN_MS, deadline - Date.now()))
        clearTimeout(timer)
      }
    }
    const left = this.#buffer.length
    if (left > 0) {
      // Say what happened: a database that could not be reached, or one still writing when the time was up.
      if (this.#failing) {
        this.#log.error({ unwritten: left, rejected: this.#rejected, reason: this.#lastFailure },
          'history: records not written at shutdown: the database was unreachable')
      } else {
        this.#log.error({ unwritten: left, rejected: this.#rejected, graceMs },
          'history: records not written at shutdown: they were still being written when the shutdown grace period ended')
      }
    }
    return left
  }

  #drain (): void {
    if (this.#draining !== null) return
    this.#draining = this.#writeAll().finally(() => {
      this.#draining = null
      // A record that arrived after the writer's last look at the buffer (a released waiter's caller records the next
      // at once, before this runs) found it still draining: write it now, not when another record comes.
      if (this.#buffer.length > 0 && this.#retryTimer === null && !this.#failing) this.#drain()
    })
  }

  async #writeAll (): Promise<void> {
    while (this.#buffer.length > 0) {
      const batch = this.#buffer.slice(0, BATCH_SIZE)
      this.#writing = new Set(batch)
      try {
        await this.#store.insertMany(batch)
        this.#settle(batch)
      } catch (err) {
        const failure = classifyWriteError(err)
        if (failure.kind === 'database') { this.#unavailable(err, failure.reason); return }
        if (failure.kind === 'unknown' && !await this.#answers()) { this.#unavailable(null, failure.reason); return }
        // The database answered, and refused some record's data (or refused the batch for a reason it did not
        // say was the data's): find which, one at a time.
        if (!await this.#writeOneByOne(batch)) return
      } finally {
        this.#writing = NONE
      }
      if (this.#failing) {
        this.#log.info({ pending: this.#buffer.length }, 'history: the database is back; writing the buffered records')
        this.#failing = false
      }
      this.#retryDelay = RETRY_MIN_MS
    }
  }

  /** True when the store's probe answers: the database is up, whatever the last write said. */
  async #answers (): Promise<boolean> {
    if (this.#store.probe === undefined) return false
    try {
      await this.#store.probe()
      return true
    } catch {
      return false
    }
  }

  /**
   * Writes each record of a refused batch on its own; sets aside those refused alone for their data, and those
   * refused alone with an unknown error (UNKNOWN_ERROR_ATTEMPTS times, the database answering) once another record
   * was written meanwhile: the proof that the fault is the record's. False: the batch waits (the database went
   * away, or refuses every record alike), retried with backoff.
   */
  async #writeOneByOne (batch: readonly HistoryRecord[]): Promise<boolean> {
    const suspects: HistoryRecord[] = []
    let written = 0
    for (const record of batch) {
      const outcome = await this.#writeAlone(record)
      if (outcome.kind === 'down') return false
      if (outcome.kind === 'written') written++
      if (outcome.kind === 'unknown') suspects.push(record)
    }
    if (suspects.length === 0) return true
    if (written === 0) written = await this.#writeControl(new Set(batch))
    if (written < 0) return false
    // Tried again in rounds (one pause per round, however many they are): a passing failure clears.
    let remaining = suspects.map(record => ({ record, reason: {} as Record<string, string | number> }))
    for (let attempt = 2; attempt <= UNKNOWN_ERROR_ATTEMPTS && remaining.length > 0; attempt++) {
      await new Promise(resolve => setTimeout(resolve, RETRY_MIN_MS))
      const still: typeof remaining = []
      for (const { record } of remaining) {
        const outcome = await this.#writeAlone(record)
        if (outcome.kind === 'down') return false
        if (outcome.kind === 'written') written++ // the database writes: proof enough for the others
        if (outcome.kind === 'unknown') still.push({ record, reason: outcome.reason })
      }
      remaining = still
    }
    if (remaining.length === 0) return true
    if (written === 0) { // every record refused alike: the database's fault, not theirs
      this.#unavailable(null, remaining[0]!.reason, 'history: the database refuses every record with an unrecognised error; they wait in the buffer')
      return false
    }
    for (const { record, reason } of remaining) this.#setAside(record, { ...reason, unrecognised: 'refused alone while other records were written' })
    return true
  }

  /**
   * Every record of the batch failed alone with an unknown error: the first buffered record beyond it, alone, tells
   * whether the database writes anything. 1: written; 0: not; -1: the database went away.
   */
  async #writeControl (batch: ReadonlySet<HistoryRecord>): Promise<number> {
    const control = this.#buffer.find(record => !batch.has(record))
    if (control === undefined) return 0
    this.#writing = new Set([...batch, control])
    const outcome = await this.#writeAlone(control)
    return outcome.kind === 'down' ? -1 : outcome.kind === 'written' ? 1 : 0
  }

  /** One record in a transaction of its own: written, set aside for its data, refused for a reason unknown, or the database down. */
  async #writeAlone (record: HistoryRecord): Promise<Alone> {
    try {
      await this.#store.insertMany([record])
      this.#settle([record])
      return { kind: 'written' }
    } catch (err) {
      const failure = classifyWriteError(err)
      if (failure.kind === 'data') { this.#setAside(record, failure.reason); return { kind: 'refused' } }
      if (failure.kind === 'unknown') {
        if (await this.#answers()) return { kind: 'unknown', reason: failure.reason }
        this.#unavailable(null, failure.reason)
      } else this.#unavailable(err, failure.reason)
      return { kind: 'down' }
    }
  }

  #setAside (record: HistoryRecord, reason: Record<string, string | number>): void {
    this.#rejected++
    this.#hooks.rejected?.()
    // Its id and the driver's reason only: the database's message may quote the record's content.
    this.#log.error({ identification: record.id, reason },
      'history: the database refused this record\'s data; it is set aside (not written, nor its webhook events)')
    this.#settle([record], false)
  }

  /** Takes records off the buffer (most at its front; a record set aside may have been passed) and releases their waiters. */
  #settle (records: readonly HistoryRecord[], written = true): void {
    const settled = new Set(records)
    let front = 0
    while (front < this.#buffer.length && settled.has(this.#buffer[front] as HistoryRecord)) front++
    this.#buffer.splice(0, front)
    if (front < settled.size) {
      // Records on the wire are never dropped, so each is still in the buffer, behind a suspect one.
      for (let i = 0, left = settled.size - front; i < this.#buffer.length && left > 0;) {
        if (settled.has(this.#buffer[i] as HistoryRecord)) { this.#buffer.splice(i, 1); left-- } else i++
      }
    }
    for (const record of records) {
      this.#release(record)
      if (written) this.#hooks.written?.()
    }
  }

  /** The database cannot be reached (or is not ready): everything waits in the buffer; retried with backoff. */
  #unavailable (err: unknown, reason: Record<string, string | number>,
    message = 'history: cannot reach the database to write records; they wait in the buffer'): void {
    // `err` null: an error the database raised for a record (its message may quote the record): its code only.
    if (!this.#failing) this.#log.error({ ...(err === null ? {} : { err }), reason, pending: this.#buffer.length }, message)
    this.#failing = true
    this.#lastFailure = reason
    // No answer waits for a database that is down: they go on, their records stay buffered.
    for (const waiting of [...this.#waiters.keys()]) this.#release(waiting)
    if (!this.#stopped) {
      this.#retryTimer = setTimeout(() => { this.#retryTimer = null; this.#drain() }, this.#retryDelay)
      this.#retryTimer.unref()
      this.#retryDelay = Math.min(RETRY_MAX_MS, this.#retryDelay * 2)
    }
  }
}
