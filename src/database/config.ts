// Where the database is: an embedded SQLite file in DATA_DIR (the default), or a PostgreSQL server
// (DATABASE_URL, a pool of connections). None with HISTORY=off: nothing is kept.
import path from 'node:path'
import { Type, type Static } from '@sinclair/typebox'

export const DatabaseEnv = Type.Object({
  /** The folder of the embedded SQLite database (history.db) when DATABASE_URL is unset. */
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  /** postgres://user:password@host:port/db — PostgreSQL instead of SQLite. */
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATABASE_POOL_SIZE: Type.Integer({ minimum: 1, maximum: 100, default: 10 })
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

/** `wanted`: whether anything keeps data (HISTORY=on); null otherwise. */
export function readDatabaseConfig (raw: DatabaseEnv, wanted: boolean): DatabaseTarget | null {
  if (!wanted) return null
  return raw.DATABASE_URL !== undefined
    ? { dialect: 'postgres', url: raw.DATABASE_URL, poolSize: raw.DATABASE_POOL_SIZE }
    : { dialect: 'sqlite', file: path.resolve(raw.DATA_DIR, 'history.db') }
}
