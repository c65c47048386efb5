// API keys (AUTH_MODE=apikey): the service stores only their SHA-256 (API_KEY_HASHES); a caller sends
// the key in `x-api-key`. Every configured hash is compared, in constant time, whatever matches.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Role } from './caller.ts'

export interface ApiKeyEntry {
  /** Shown in logs instead of the key: the name given in API_KEY_HASHES, else the hash's first 12 hex digits. */
  id: string
  sha256: Buffer
  /** What the key may do (`:roles` in its entry); Identify when the entry names none. */
  roles: readonly Role[]
}

/** Makes a leaked key recognisable (secret scanners, logs, chat pastes). */
export const API_KEY_PREFIX = 'agv_'

/** The names API_KEY_HASHES accepts before the `:`. */
export const API_KEY_NAME = /^[\w.-]{1,64}$/

export function sha256Hex (key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex')
}

export interface NewApiKey {
  /** The secret: shown once, to be handed to the client. */
  key: string
  sha256: string
  /** A ready-to-paste API_KEY_HASHES / API_KEY_HASHES_FILE entry: `name:sha256`. */
  entry: string
}

/** A new random key: the prefix and 32 random bytes, base64url. */
export function newApiKey (name = 'key'): NewApiKey {
  if (!API_KEY_NAME.test(name)) throw new RangeError('an API key name is 1 to 64 letters, digits, "_", "." or "-"')
  const key = API_KEY_PREFIX + randomBytes(32).toString('base64url')
  const sha256 = sha256Hex(key)
  return { key, sha256, entry: `${name}:${sha256}` }
}

/**
 * Finds the configured entry a presented key belongs to, or null. The key is hashed once and
 * compared with every configured hash (no early exit), so the time taken says nothing about
 * which entry, if any, matched or how much of a hash did.
 */
export function createApiKeyMatcher (entries: readonly ApiKeyEntry[]): (key: string) => ApiKeyEntry | null {
  const hashes = entries.map(entry => ({ entry, sha256: Buffer.from(entry.sha256) }))
  for (const { sha256 } of hashes) {
    if (sha256.length !== 32) throw new RangeError('an API key hash is a SHA-256 (32 bytes)')
  }
  return (key: string): ApiKeyEntry | null => {
    const presented = createHash('sha256').update(key, 'utf8').digest()
    let found: ApiKeyEntry | null = null
    for (const { entry, sha256 } of hashes) {
      const equal = timingSafeEqual(presented, sha256)
      found = equal && found === null ? entry : found
    }
    return found
  }
}
