// The Idempotency-Key header around one identification (the rows: idempotency.ts), as an `around` wrapper of
// app.identification. A retry after the first finished replays its identification (same id, no model call,
// `Idempotency-Replayed: true`); while it runs, 409 IDEMPOTENCY_KEY_IN_USE; with another image or other arguments,
// 422 IDEMPOTENCY_KEY_REUSED. Identifications never fail because of the database: a key that cannot be claimed
// (database down, HISTORY=off) is ignored, with a warning, and the identification runs as if it had none.
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

/** How long a replay waits for the first request's record, written off its request path (on another instance, perhaps). */
const RECORD_WAIT_MS = 2_000
const RECORD_POLL_MS = 100

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
        const stored = await storedIdentification(history, ref.callerId, claim.identificationId)
        if (stored !== undefined) {
          reply.header('idempotency-replayed', 'true')
          return stored
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

/**
 * The first request's identification. Its record is written off the request path: on this instance, wait
 * for the recorder; on another, poll for a short while.
 */
async function storedIdentification (history: History, callerId: string, id: string): Promise<Identification | undefined> {
  const deadline = Date.now() + RECORD_WAIT_MS
  let stored = await history.get(id, callerId)
  if (stored !== undefined) return stored
  await history.flushed()
  for (;;) {
    stored = await history.get(id, callerId)
    if (stored !== undefined || Date.now() >= deadline) return stored
    await sleep(RECORD_POLL_MS)
  }
}
