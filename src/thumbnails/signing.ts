// Signed, expiring thumbnail URLs: `/thumbnails/<id>.jpg?expires=<unix seconds>&signature=<base64url
// HMAC-SHA256 over "<id>.<expires>">`. The signature is the authorization (a browser's <img src> sends no
// Authorization header), so it is checked in constant time, and anything expired, malformed or over-long
// is refused before any work. Neither the key nor a signature is ever logged or put in an error message.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

export const THUMBNAIL_PATH_PREFIX = '/thumbnails/'

/** Identification ids are UUIDs; anything else (or longer) is not one of ours. */
const ID = /^[A-Za-z0-9-]{1,64}$/
const FILE = /^([A-Za-z0-9-]{1,64})\.jpg$/
const EXPIRES = /^[0-9]{1,12}$/
/** 32 bytes of HMAC-SHA256, base64url without padding. */
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/
/** Longer than any URL we sign: refused unread. */
export const MAX_THUMBNAIL_URL_LENGTH = 256
/** Clock skew allowed between the instance that signed and the one that checks. */
const SKEW_SECONDS = 60

export type VerifyFailure = 'malformed' | 'expired' | 'bad-signature'
export type VerifyResult = { ok: true, id: string, expires: number } | { ok: false, reason: VerifyFailure }

export interface UrlSignerOptions {
  /** URL_SIGNING_KEY; null: a random key for this signer only. */
  key: Buffer | null
  ttlSeconds: number
  /** Milliseconds since the epoch; Date.now unless a test controls the clock. */
  now?: () => number
}

export interface UrlSigner {
  /** True when the key was made at random (URLs work only where they were signed). */
  readonly ephemeralKey: boolean
  readonly ttlSeconds: number
  /** The path and query of a URL valid for ttlSeconds from now. */
  sign (id: string): { path: string, expires: number }
  /** Checks a request's file name (`<id>.jpg`) and parsed query. */
  verify (file: string, query: unknown): VerifyResult
  /** Seconds until `expires`, by the signer's clock (never negative). */
  secondsLeft (expires: number): number
}

export function createUrlSigner ({ key, ttlSeconds, now = Date.now }: UrlSignerOptions): UrlSigner {
  const secret = key ?? randomBytes(32)
  const mac = (id: string, expires: number): Buffer => createHmac('sha256', secret).update(`${id}.${expires}`).digest()
  const nowSeconds = (): number => Math.floor(now() / 1000)

  return {
    ephemeralKey: key === null,
    ttlSeconds,
    sign (id) {
      if (!ID.test(id)) throw new Error('not an identification id')
      const expires = nowSeconds() + ttlSeconds
      const signature = mac(id, expires).toString('base64url')
      return { path: `${THUMBNAIL_PATH_PREFIX}${id}.jpg?expires=${expires}&signature=${signature}`, expires }
    },
    verify (file, query) {
      const id = FILE.exec(file)?.[1]
      if (id === undefined || typeof query !== 'object' || query === null) return { ok: false, reason: 'malformed' }
      const { expires: expiresText, signature } = query as Record<string, unknown>
      // A repeated parameter is an array: malformed, as is anything not of the exact shape we sign.
      if (typeof expiresText !== 'string' || !EXPIRES.test(expiresText)) return { ok: false, reason: 'malformed' }
      if (typeof signature !== 'string' || !SIGNATURE.test(signature)) return { ok: false, reason: 'malformed' }
      const expires = Number(expiresText)
      const current = nowSeconds()
      if (expires <= current) return { ok: false, reason: 'expired' }
      // Further ahead than we ever sign (THUMBNAIL_URL_TTL_S was lowered since, or it is forged): refused.
      if (expires > current + ttlSeconds + SKEW_SECONDS) return { ok: false, reason: 'malformed' }
      // Compared as text: base64url decoding ignores the last character's spare bits, so only the canonical spelling passes.
      const presented = Buffer.from(signature, 'latin1')
      const expected = Buffer.from(mac(id, expires).toString('base64url'), 'latin1')
      if (!timingSafeEqual(presented, expected)) return { ok: false, reason: 'bad-signature' }
      return { ok: true, id, expires }
    },
    secondsLeft (expires) {
      return Math.max(0, expires - nowSeconds())
    }
  }
}
