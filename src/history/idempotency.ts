// Idempotency-Key (IETF httpapi idempotency-key-header draft), stored in `idempotency_keys`, one row per
// (caller, key), with the same SQL on SQLite and PostgreSQL. A claim inserts the row (on conflict nothing)
// and reads what is there: the insert decides who runs, across instances sharing one database.
//
// A row is `running` (its identification under way; created_at is its lease), then `done` (identification_id
// set) once the identification succeeded. A failed identification deletes its row (release): the draft leaves
// what a retry after a failure does to the server, and here it runs again.
import { createHash } from 'node:crypto'
import type { Kysely } from 'kysely'
import { IdempotencyKeyInUseError, InvalidIdempotencyKeyError, IdempotencyKeyReusedError } from '../errors.ts'
import type { HistoryTables } from './tables.ts'

/** How long a key is remembered after its first use. */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 60 * 60 * 1000
/** A key still running after this long belongs to a request whose instance died: the next request takes it over. */
export const IDEMPOTENCY_LEASE_MS = 10 * 60 * 1000
/** What a 409 tells the client to wait (extensions.retryAfter) before trying again. */
export const IN_USE_RETRY_AFTER_S = 2

export const IDEMPOTENCY_HEADER = 'Idempotency-Key'
const VISIBLE_ASCII = /^[\x21-\x7E]{1,255}$/

/**
 * The key of an `Idempotency-Key` header, or null without one: 1–255 visible ASCII characters (0x21–0x7E),
 * bare or as the draft's Structured Field string (`"key"`, with `\"` and `\\` escapes), both the same key.
 * Anything else is BAD_USER_INPUT, HTTP 400.
 */
export function parseIdempotencyKey (value: string | string[] | undefined): string | null {
  if (value === undefined) return null
  const raw = Array.isArray(value) ? value.join(', ') : value
  let key: string | null = raw
  if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) key = unquote(raw.slice(1, -1))
  if (key === null || !VISIBLE_ASCII.test(key)) {
    throw new InvalidIdempotencyKeyError(`The ${IDEMPOTENCY_HEADER} header must be 1 to 255 visible ASCII characters (no spaces or control characters), ` +
      'bare or as a quoted string; send one header only.', { argument: IDEMPOTENCY_HEADER })
  }
  return key
}

/** The inside of an sf-string: `\"` and `\\` unescaped; null if it is not one. */
function unquote (inner: string): string | null {
  let out = ''
  for (let i = 0; i < inner.length; i++) {
    const char = inner[i] as string
    if (char === '"') return null
    if (char === '\\') {
      const next = inner[++i]
      if (next !== '"' && next !== '\\') return null
      out += next
    } else {
      out += char
    }
  }
  return out
}

export interface FingerprintInputs {
  /** The uploaded bytes, as received. */
  image: Buffer
  /** The arguments as the identification uses them (trimmed, defaults applied). */
  instructions: string
  language: string
  detail: string
}

/** sha256 over the image and the normalised arguments, each length-prefixed (so no two inputs run together). */
export function fingerprintOf ({ image, instructions, language, detail }: FingerprintInputs): string {
  const hash = createHash('sha256').update('agrivision-idempotency-v1')
  for (const part of [image, Buffer.from(instructions, 'utf8'), Buffer.from(language, 'utf8'), Buffer.from(detail, 'utf8')]) {
    const length = Buffer.alloc(8)
    length.writeBigUInt64BE(BigInt(part.length))
    hash.update(length).update(part)
  }
  return hash.digest('hex')
}

export interface KeyRef {
  callerId: string
  key: string
}

/** The claim is ours: run, then complete or release with this lease. */
export interface Proceed { kind: 'proceed', lease: number }
/** The first request finished: answer with its identification. */
export interface Replay { kind: 'replay', identificationId: string, lease: number }
export type Claim = Proceed | Replay

/**
 * Claims (caller, key) for a request with this fingerprint at `now` (epoch ms). Proceed: ours to run (a new key,
 * an expired one, or a stale lease taken over). Replay: done before. Throws IDEMPOTENCY_KEY_REUSED (another
 * fingerprint) or IDEMPOTENCY_KEY_IN_USE (the first still running). Database errors propagate.
 */
export async function claimKey (
  db: Kysely<HistoryTables>, { callerId, key }: KeyRef, fingerprint: string, now: number, leaseMs: number = IDEMPOTENCY_LEASE_MS
): Promise<Claim> {
  await db.deleteFrom('idempotency_keys').where('caller_id', '=', callerId).where('key', '=', key).where('expires_at', '<=', now).execute()
  if (await insertClaim(db, { callerId, key }, fingerprint, now)) return { kind: 'proceed', lease: now }

  const row = await db.selectFrom('idempotency_keys').selectAll()
    .where('caller_id', '=', callerId).where('key', '=', key).executeTakeFirst()
  // Gone between the insert and the read (released by a failure, or expired and purged): try once more.
  if (row === undefined) {
    if (await insertClaim(db, { callerId, key }, fingerprint, now)) return { kind: 'proceed', lease: now }
    throw new IdempotencyKeyInUseError(`A request with this ${IDEMPOTENCY_HEADER} is under way; try again in a moment.`, IN_USE_RETRY_AFTER_S)
  }
  if (row.fingerprint !== fingerprint) {
    throw new IdempotencyKeyReusedError(`This ${IDEMPOTENCY_HEADER} was used with another image or other arguments; use a new key for a new request.`)
  }
  if (row.state === 'done' && row.identification_id !== null) return { kind: 'replay', identificationId: row.identification_id, lease: row.created_at }
  if (row.created_at <= now - leaseMs && await takeOver(db, { callerId, key }, row.created_at, now)) return { kind: 'proceed', lease: now }
  throw new IdempotencyKeyInUseError(`A request with this ${IDEMPOTENCY_HEADER} is still running; try again when it has finished.`, IN_USE_RETRY_AFTER_S)
}

/** Inserts the running row; false when (caller, key) already has one. */
async function insertClaim (db: Kysely<HistoryTables>, { callerId, key }: KeyRef, fingerprint: string, now: number): Promise<boolean> {
  const inserted = await db.insertInto('idempotency_keys')
    .values({ caller_id: callerId, key, fingerprint, state: 'running', identification_id: null, created_at: now, expires_at: now + IDEMPOTENCY_KEY_TTL_MS })
    .onConflict(oc => oc.columns(['caller_id', 'key']).doNothing())
    .executeTakeFirst()
  return Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1
}

/**
 * Makes the row ours again, atomically: only if it still holds the lease we saw (so of two instances taking
 * over a stale lease, or replaying a record that is gone, one wins). The key keeps its fingerprint; its 24 h start again.
 */
export async function takeOver (db: Kysely<HistoryTables>, { callerId, key }: KeyRef, seenLease: number, now: number): Promise<boolean> {
  const result = await db.updateTable('idempotency_keys')
    .set({ state: 'running', identification_id: null, created_at: now, expires_at: now + IDEMPOTENCY_KEY_TTL_MS })
    .where('caller_id', '=', callerId).where('key', '=', key).where('created_at', '=', seenLease)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) === 1
}

/** The identification succeeded: later requests with the key replay it. */
export async function completeKey (
  db: Kysely<HistoryTables>, { callerId, key }: KeyRef, lease: number, identificationId: string
): Promise<void> {
  await db.updateTable('idempotency_keys')
    .set({ state: 'done', identification_id: identificationId })
    .where('caller_id', '=', callerId).where('key', '=', key).where('created_at', '=', lease).where('state', '=', 'running')
    .execute()
}

/** The identification failed: the key is forgotten, so that a retry runs again. */
export async function releaseKey (db: Kysely<HistoryTables>, { callerId, key }: KeyRef, lease: number): Promise<void> {
  await db.deleteFrom('idempotency_keys')
    .where('caller_id', '=', callerId).where('key', '=', key).where('created_at', '=', lease).where('state', '=', 'running')
    .execute()
}
