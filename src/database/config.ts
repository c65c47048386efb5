// Where the database is: an embedded SQLite file in DATA_DIR (the default), or a PostgreSQL server
// (DATABASE_URL, a pool of connections). None with HISTORY=off: nothing is kept.
// PostgreSQL logs in with the password in DATABASE_URL (DATABASE_AUTH=password, the default), or with the managed
// identity's Microsoft Entra ID token (DATABASE_AUTH=entra: no secret anywhere), over TLS verified against
// DATABASE_CA_FILE or Node's bundled CAs, the host name checked (libpq's sslmode=verify-full).
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError, StringEnum } from '../config-support.ts'

export const DatabaseEnv = Type.Object({
  /** The folder of the embedded SQLite database (history.db) when DATABASE_URL is unset. */
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  /** postgres://user:password@host:port/db — PostgreSQL instead of SQLite. */
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATABASE_POOL_SIZE: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  /** How PostgreSQL connections log in: the URL's password, or the managed identity's token. */
  DATABASE_AUTH: StringEnum(['password', 'entra'] as const, { default: 'password' }),
  /** PEM file of the CA(s) that signed the server's certificate (DATABASE_AUTH=entra); default: Node's bundled CAs. */
  DATABASE_CA_FILE: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  /** The token's scope (DATABASE_AUTH=entra): Azure Database for PostgreSQL's. */
  DATABASE_ENTRA_SCOPE: Type.String({ pattern: '^https://\\S+/\\.default$', maxLength: 512, default: 'https://ossrdbms-aad.database.windows.net/.default' })
})
export type DatabaseEnv = Static<typeof DatabaseEnv>

export type DatabaseTarget =
  | { dialect: 'sqlite', file: string }
  | { dialect: 'postgres', url: string, poolSize: number, entra?: EntraLogin }

/** DATABASE_AUTH=entra: each connection logs in with the managed identity's token for `scope`, over verified TLS. */
export interface EntraLogin {
  /** DATABASE_ENTRA_SCOPE. */
  scope: string
  /** DATABASE_CA_FILE's PEM, or null for Node's bundled CAs. */
  ca: string | null
}

/** The CA file is bounded: a bundle of a few certificates, not a data file. */
const MAX_CA_BYTES = 1024 * 1024

/** `wanted`: whether anything keeps data (HISTORY=on); null otherwise. */
export function readDatabaseConfig (raw: DatabaseEnv, wanted: boolean): DatabaseTarget | null {
  const entra = raw.DATABASE_AUTH === 'entra'
  if (!entra && raw.DATABASE_CA_FILE !== undefined) {
    throw new ConfigError('invalid configuration: DATABASE_CA_FILE is used with DATABASE_AUTH=entra only (with a password, put sslrootcert in DATABASE_URL)')
  }
  if (!wanted) return null
  if (raw.DATABASE_URL === undefined) {
    if (entra) throw new ConfigError('invalid configuration: DATABASE_AUTH=entra needs DATABASE_URL (postgres://<identity name>@<server>:5432/<database>)')
    return { dialect: 'sqlite', file: path.resolve(raw.DATA_DIR, 'history.db') }
  }
  if (!entra) return { dialect: 'postgres', url: raw.DATABASE_URL, poolSize: raw.DATABASE_POOL_SIZE }
  return {
    dialect: 'postgres',
    url: entraUrl(raw.DATABASE_URL),
    poolSize: raw.DATABASE_POOL_SIZE,
    entra: { scope: raw.DATABASE_ENTRA_SCOPE, ca: raw.DATABASE_CA_FILE === undefined ? null : readCa(raw.DATABASE_CA_FILE) }
  }
}

/**
 * The URL without its query: under entra the password is the token and TLS is always verified, so the URL names the
 * server, the database and the identity, nothing else. pg lets a URL's ssl parameters override the `ssl` option
 * (a `sslmode` there would drop our CA), and `host=` could point at a Unix socket, without TLS: refused, not ignored.
 */
function entraUrl (value: string): string {
  const url = URL.parse(value)
  if (url === null || url.hostname === '') throw new ConfigError('invalid configuration: DATABASE_URL is not a valid URL')
  if (url.password !== '') {
    throw new ConfigError('invalid configuration: DATABASE_AUTH=entra logs in with the managed identity\'s token: remove the password from DATABASE_URL')
  }
  if (url.username === '') {
    throw new ConfigError('invalid configuration: DATABASE_AUTH=entra needs the user in DATABASE_URL: the identity\'s name, as created by pgaadauth_create_principal')
  }
  for (const [name, param] of url.searchParams) {
    if (name === 'sslmode' && param === 'verify-full') continue
    if (name === 'sslmode') {
      throw new ConfigError(`invalid configuration: DATABASE_AUTH=entra always verifies the server's certificate and name (sslmode=verify-full); DATABASE_URL asks for sslmode=${param.slice(0, 20)}`)
    }
    throw new ConfigError(`invalid configuration: DATABASE_AUTH=entra takes no "${name.slice(0, 40)}" parameter in DATABASE_URL` +
      (name.startsWith('ssl') ? ' (a private CA goes in DATABASE_CA_FILE)' : ''))
  }
  url.search = ''
  return url.toString()
}

function readCa (file: string): string {
  let pem: string
  try {
    pem = readFileSync(file, 'utf8').slice(0, MAX_CA_BYTES + 1)
  } catch (err) {
    throw new ConfigError(`invalid configuration: DATABASE_CA_FILE cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  if (pem.length > MAX_CA_BYTES || !pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError('invalid configuration: DATABASE_CA_FILE must hold PEM certificates (-----BEGIN CERTIFICATE-----), at most 1 MiB')
  }
  return pem
}
