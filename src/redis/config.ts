// Redis (REDIS_URL): shared by the rate limits' counters and the subscriptions' channel between instances.
// Connections authenticate with the URL's password (REDIS_AUTH=password, the default), or with the managed
// identity's Microsoft Entra ID token (REDIS_AUTH=entra: user = the identity's object id, password = the token,
// over TLS; no secret anywhere), as Azure Cache for Redis and Azure Managed Redis accept.
import { readFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError, StringEnum } from '../config-support.ts'

export const RedisEnv = Type.Object({
  /** Shares the rate limits' counters and live updates between instances; unset: each instance on its own. */
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  /** How connections authenticate: the URL's password, or the managed identity's token. */
  REDIS_AUTH: StringEnum(['password', 'entra'] as const, { default: 'password' }),
  /** The Redis user under REDIS_AUTH=entra; default: the token's `oid` claim (the identity's object id). */
  REDIS_USERNAME: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^\\S+$' })),
  /** PEM file of the CA(s) that signed the server's certificate (rediss://); default: Node's bundled CAs. */
  REDIS_CA_FILE: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  /** The token's scope (REDIS_AUTH=entra). */
  REDIS_ENTRA_SCOPE: Type.String({ pattern: '^https://\\S+/\\.default$', maxLength: 512, default: 'https://redis.azure.com/.default' })
})
export type RedisEnv = Static<typeof RedisEnv>

export interface RedisConfig {
  url: string | null
  /** REDIS_CA_FILE's PEM, or null for Node's bundled CAs. */
  ca: string | null
  /** REDIS_AUTH=entra; undefined with a password (or none). */
  entra?: RedisEntraAuth
}

export interface RedisEntraAuth {
  /** REDIS_ENTRA_SCOPE. */
  scope: string
  /** REDIS_USERNAME, or null: the token's oid. */
  username: string | null
}

/** The CA file is bounded: a bundle of a few certificates, not a data file. */
const MAX_CA_BYTES = 1024 * 1024

export function readRedisConfig (raw: RedisEnv): RedisConfig {
  const url = raw.REDIS_URL ?? null
  const ca = raw.REDIS_CA_FILE === undefined ? null : readCa(raw.REDIS_CA_FILE)
  if (raw.REDIS_AUTH !== 'entra') {
    if (raw.REDIS_USERNAME !== undefined) throw new ConfigError('invalid configuration: REDIS_USERNAME is used with REDIS_AUTH=entra only (with a password, the user goes in REDIS_URL)')
    return { url, ca }
  }
  if (url === null) throw new ConfigError('invalid configuration: REDIS_AUTH=entra needs REDIS_URL (rediss://<cache name>.redis.cache.windows.net:6380)')
  checkEntraUrl(url)
  return { url, ca, entra: { scope: raw.REDIS_ENTRA_SCOPE, username: raw.REDIS_USERNAME ?? null } }
}

/** Under entra the token is the password and travels over TLS only: rediss://, and no credentials in the URL. */
function checkEntraUrl (raw: string): void {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError('invalid configuration: REDIS_URL is not a valid URL')
  }
  if (url.protocol !== 'rediss:') {
    throw new ConfigError('invalid configuration: REDIS_AUTH=entra sends a token as the password: REDIS_URL must be rediss:// (TLS)')
  }
  if (url.password !== '' || url.username !== '') {
    throw new ConfigError('invalid configuration: REDIS_AUTH=entra authenticates with the managed identity\'s token: remove the user and password from REDIS_URL (REDIS_USERNAME names the user)')
  }
  if (url.hostname === '') throw new ConfigError('invalid configuration: REDIS_URL has no host')
}

function readCa (file: string): string {
  let pem: string
  try {
    pem = readFileSync(file, 'utf8').slice(0, MAX_CA_BYTES + 1)
  } catch (err) {
    throw new ConfigError(`invalid configuration: REDIS_CA_FILE cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  if (pem.length > MAX_CA_BYTES || !pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError('invalid configuration: REDIS_CA_FILE must hold PEM certificates (-----BEGIN CERTIFICATE-----), at most 1 MiB')
  }
  return pem
}
