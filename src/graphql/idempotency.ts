// The Idempotency-Key header around one identification (the rows: src/history/idempotency.ts). A retry
// after the first finished replays its identification (same id, no model call, `Idempotency-Replayed: true`);
// while it runs, 409 IDEMPOTENCY_KEY_IN_USE; with another image or other arguments, 422 IDEMPOTENCY_KEY_REUSED.
// Identifications never fail because of the database: a key that cannot be claimed (database down, HISTORY=off)
// is ignored, with a warning, and the identification runs as if it had none.
import { setTimeout as sleep } from 'node:timers/promises'
import { ANONYMOUS } from '../callers/caller.ts'
import { IdempotencyKeyInUseError, StorageUnavailableError } from '../errors.ts'
import type { Identification } from '../identification/types.ts'
import type { History } from '../history/plugin.ts'
import {
  claimKey, completeKey, fingerprintOf, IDEMPOTENCY_HEADER, IDEMPOTENCY_LEASE_MS, IN_USE_RETRY_AFTER_S, parseIdempotencyKey,
  releaseKey, takeOver,
  type Claim, type FingerprintInputs, type KeyRef
} from '../history/idempotency.ts'
import type { AppContext } from './context.ts'

/** How long a replay waits for the first request's record, written off its request path (on another instance, perhaps). */
const RECORD_WAIT_MS = 2_000
const RECORD_POLL_MS = 100

/** The timeouts an identification's lease must outlast (REQUEST_TIMEOUT_MS, VISION_QUEUE_TIMEOUT_MS, VISION_TIMEOUT_MS). */
export interface IdempotencyLease {
  requestTimeoutMs: number
  overload: { queueTimeoutMs: number }
  vision: { timeoutMs: number }
}

export async function withIdempotency (
  ctx: Pick<AppContext, 'request' | 'reply' | 'caller' | 'log'> & { history: History | null, lease: IdempotencyLease },
  inputs: FingerprintInputs,
  run: () => Promise<Identification>,
  now: number = Date.now()
): Promise<Identification> {
  const key = parseIdempotencyKey(ctx.request.headers['idempotency-key'])
  if (key === null) return await run()
  const history = ctx.history
  if (history === null) {
    ctx.log.warn(`${IDEMPOTENCY_HEADER} ignored: history is off (HISTORY=off), so keys are not kept`)
    return await run()
  }
  const ref: KeyRef = { callerId: (ctx.caller ?? ANONYMOUS).id, key }
  const storageDown = (err: unknown, doing: string): boolean => {
    if (!(err instanceof StorageUnavailableError)) return false
    ctx.log.warn(`${IDEMPOTENCY_HEADER} ignored: the history database is unavailable (${doing}); the identification runs without it`)
    return true
  }

  let claim: Claim
  try {
    claim = await history.query(store => claimKey(store.db, ref, fingerprintOf(inputs), now, leaseFor(ctx.lease)))
  } catch (err) {
    if (storageDown(err, 'claim')) return await run()
    throw err // IDEMPOTENCY_KEY_IN_USE, IDEMPOTENCY_KEY_REUSED
  }

  if (claim.kind === 'replay') {
    try {
      const stored = await storedIdentification(history, ref.callerId, claim.identificationId)
      if (stored !== undefined) {
        ctx.reply?.header('idempotency-replayed', 'true')
        return stored
      }
      // Its record is gone (deleted, or never written while the database was down): the key starts afresh.
      if (!await history.query(store => takeOver(store.db, ref, claim.lease, now))) {
        throw new IdempotencyKeyInUseError(`A request with this ${IDEMPOTENCY_HEADER} is under way; try again in a moment.`, IN_USE_RETRY_AFTER_S)
      }
      claim = { kind: 'proceed', lease: now }
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
      await history.query(store => releaseKey(store.db, ref, lease))
    } catch (releaseError) {
      storageDown(releaseError, 'release') // the key stays running until its lease is stale (10 minutes)
    }
    throw err
  }
  try {
    await history.query(store => completeKey(store.db, ref, lease, identification.id))
  } catch (err) {
    storageDown(err, 'complete') // the answer stands; a retry waits for the stale lease, then runs again
  }
  return identification
}

/**
 * The first request's identification. Its record is written off the request path: on this instance, wait
 * for the recorder; on another, poll for a short while.
 */
async function storedIdentification (history: History, callerId: string, id: string): Promise<Identification | undefined> {
  const deadline = Date.now() + RECORD_WAIT_MS
  let stored = await history.query(store => store.get(id, callerId))
  if (stored !== undefined) return stored
  await history.recorder.flushed()
  for (;;) {
    stored = await history.query(store => store.get(id, callerId))
    if (stored !== undefined || Date.now() >= deadline) return stored
    await sleep(RECORD_POLL_MS)
  }
}

/**
 * How long a running claim is trusted before a retry may take it over (its instance presumably died): at least
 * 10 minutes, and never less than the longest an identification can legitimately take here (the whole upload,
 * the wait for a slot, the model call), so a slow but live request never loses its key.
 */
function leaseFor (config: IdempotencyLease): number {
  return Math.max(IDEMPOTENCY_LEASE_MS, config.requestTimeoutMs + config.overload.queueTimeoutMs + config.vision.timeoutMs)
}
