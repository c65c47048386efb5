// The Idempotency-Key header around one identification (the rows: idempotency.ts), as an `around` wrapper of
// app.identification. A retry after the first finished replays its identification (same id, no model call,
// `Idempotency-Replayed: true`); while it runs, 409 IDEMPOTENCY_KEY_IN_USE; with another image or other arguments,
// 422 IDEMPOTENCY_KEY_REUSED. Identifications never fail because of the database: a key that cannot be claimed
// (database down, HISTORY=off) is ignored, with a warning, and the identification runs as if it had none.
// A replay waits for the first request's record a bounded time (REPLAY_WAIT_MS), a bounded number of requests at once
// per key and per caller; past either, 409 IDEMPOTENCY_KEY_IN_USE with Retry-After: never a socket held open.
import { setTimeout as sleep } from 'node:timers/promises'
import { IdempotencyKeyInUseError, StorageUnavailableError } from '../errors.ts'
import type { Identification } from '../identification/types.ts'
import type { AroundIdentification } from '../identification/plugin.ts'
import type { Database } from '../database/plugin.ts'
import type { History } from './public.ts'
import type { HistoryTables } from './tables.ts'
import {
  claimKey, completeKey, fingerprintOf, IDEMPOTENCY_HEADER, IDEMPOTENCY_LEASE_MS, IN_USE_RETRY_AFTER_S, parseIdempotencyKey,
  releaseKey, takeOver,
  type Claim, type KeyRef
} from './idempotency.ts'

/** The longest a replay waits for the first request's record, written off its request path (on another instance, perhaps). */
export const REPLAY_WAIT_MS = 5_000
const RECORD_POLL_MS = 100
const HUNG_READ_SLACK_MS = 500
/** Replays waiting for a record at once, for one key and for one caller's keys; beyond, 409 at once. */
export const REPLAY_WAITERS_PER_KEY = 4
export const REPLAY_WAITERS_PER_CALLER = 16

/**
 * `history` null (HISTORY=off): a key is ignored with a warning. `longestIdentificationMs`: the longest an
 * identification can legitimately take here (the whole upload, the wait for a slot, the model call).
 */
export function idempotencyHeader (
  stores: { history: History, database: Database } | null, longestIdentificationMs: number, now: () => number = Date.now
): AroundIdentification {
  // How long a running claim is trusted before a retry may take it over (its instance presumably died): at least
  // 10 minutes, and never less than the longest identification, so a slow but live request never loses its key.
  const leaseMs = Math.max(IDEMPOTENCY_LEASE_MS, longestIdentificationMs)
  const waiting = new WaiterCounts()
  return async (call, run) => {
    const key = parseIdempotencyKey(call.http?.request.headers['idempotency-key'])
    if (key === null || call.http === undefined) return await run()
    const { reply } = call.http
    if (stores === null) {
      call.log.warn(`${IDEMPOTENCY_HEADER} ignored: history is off (HISTORY=off), so keys are not kept`)
      return await run()
    }
    const { history, database } = stores
    const db = database.db.withTables<HistoryTables>()
    const started = now()
    const ref: KeyRef = { callerId: call.origin.caller.id, key }
    const storageDown = (err: unknown, doing: string): boolean => {
      if (!(err instanceof StorageUnavailableError)) return false
      call.log.warn(`${IDEMPOTENCY_HEADER} ignored: the history database is unavailable (${doing}); the identification runs without it`)
      return true
    }

    let claim: Claim
    try {
      claim = await database.query(() => claimKey(db, ref, fingerprintOf(call.input), started, leaseMs))
    } catch (err) {
      if (storageDown(err, 'claim')) return await run()
      throw err // IDEMPOTENCY_KEY_IN_USE, IDEMPOTENCY_KEY_REUSED
    }

    if (claim.kind === 'replay') {
      try {
        const { identificationId } = claim
        const found = await waiting.around(ref, () => storedIdentification(history, ref.callerId, identificationId))
        if (found.kind === 'stored') {
          reply.header('idempotency-replayed', 'true')
          return found.identification
        }
        if (found.kind === 'pending') {
          // Answered, its record not written yet (the database slow or down): the same answer soon, not a second run.
          throw new IdempotencyKeyInUseError(`The request with this ${IDEMPOTENCY_HEADER} has finished; its result is still being saved. ` +
            'Try again in a moment.', IN_USE_RETRY_AFTER_S)
        }
        // Its record is gone (deleted, or never written while the database was down): the key starts afresh.
        if (!await database.query(() => takeOver(db, ref, claim.lease, started))) {
          throw new IdempotencyKeyInUseError(`A request with this ${IDEMPOTENCY_HEADER} is under way; try again in a moment.`, IN_USE_RETRY_AFTER_S)
        }
        claim = { kind: 'proceed', lease: started }
      } catch (err) {
        if (storageDown(err, 'replay')) return await run()
        throw err
      }
    }

    const { lease } = claim
    let identification: Identification
    try {
      identification = await run()
    } catch (err) {
      // A failed identification gives its key back: a retry runs again (the draft leaves this to the server).
      try {
        await database.query(() => releaseKey(db, ref, lease))
      } catch (releaseError) {
        storageDown(releaseError, 'release') // the key stays running until its lease is stale (10 minutes)
      }
      throw err
    }
    try {
      await database.query(() => completeKey(db, ref, lease, identification.id))
    } catch (err) {
      storageDown(err, 'complete') // the answer stands; a retry waits for the stale lease, then runs again
    }
    return identification
  }
}

type Found =
  | { kind: 'stored', identification: Identification }
  /** Not found in time: its record still waits to be written, here or (unknown to us) on another instance. */
  | { kind: 'pending' }
  /** Not there, nor waiting here: deleted, lost, or another instance's not yet written. */
  | { kind: 'absent' }

/**
 * The first request's identification. Its record is written off the request path: on this instance, wait
 * for it; on another, poll; within REPLAY_WAIT_MS in all (a read that hangs included).
 */
async function storedIdentification (history: History, callerId: string, id: string): Promise<Found> {
  const deadline = Date.now() + REPLAY_WAIT_MS
  let timer: NodeJS.Timeout | undefined
  // A read that hangs past the polling: taken for a record still on its way (a lost one is found absent by the poll).
  const late = new Promise<Found>(resolve => { timer = setTimeout(() => { resolve({ kind: 'pending' }) }, REPLAY_WAIT_MS + HUNG_READ_SLACK_MS) })
  const look = async (): Promise<Found> => {
    let stored = await history.get(id, callerId)
    if (stored !== undefined) return { kind: 'stored', identification: stored }
    if (!await history.recordWritten(id, callerId, deadline - Date.now())) return { kind: 'pending' }
    for (;;) {
      stored = await history.get(id, callerId)
      if (stored !== undefined) return { kind: 'stored', identification: stored }
      if (Date.now() >= deadline) return { kind: 'absent' }
      await sleep(RECORD_POLL_MS)
    }
  }
  try {
    return await Promise.race([look(), late])
  } finally {
    clearTimeout(timer)
  }
}

/** How many replays wait at once, per (caller, key) and per caller: each bounded, so that waiting costs a caller little. */
class WaiterCounts {
  readonly #perKey = new Map<string, number>()
  readonly #perCaller = new Map<string, number>()

  async around<T> ({ callerId, key }: KeyRef, wait: () => Promise<T>): Promise<T> {
    const keyId = `${callerId}\n${key}`
    const forKey = this.#perKey.get(keyId) ?? 0
    const forCaller = this.#perCaller.get(callerId) ?? 0
    if (forKey >= REPLAY_WAITERS_PER_KEY || forCaller >= REPLAY_WAITERS_PER_CALLER) {
      throw new IdempotencyKeyInUseError(`Too many requests with this ${IDEMPOTENCY_HEADER} (or this caller's keys) are waiting for ` +
        'their results; try again in a moment.', IN_USE_RETRY_AFTER_S)
    }
    this.#perKey.set(keyId, forKey + 1)
    this.#perCaller.set(callerId, forCaller + 1)
    try {
      return await wait()
    } finally {
      decrement(this.#perKey, keyId)
      decrement(this.#perCaller, callerId)
    }
  }
}

function decrement (counts: Map<string, number>, id: string): void {
  const left = (counts.get(id) ?? 1) - 1
  if (left > 0) counts.set(id, left)
  else counts.delete(id)
}
