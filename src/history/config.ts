// History: where identifications are kept (embedded SQLite by default, PostgreSQL by DATABASE_URL),
// for how long, how many records may wait while the database is down, and what the features built
// on it (result cache, usage prices, signed thumbnail URLs) need.
import path from 'node:path'
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError, StringEnum } from '../config-support.ts'
import type { DatabaseTarget } from '../database/config.ts'

export const HistoryEnv = Type.Object({
  /** off: nothing is recorded, and history, idempotency, the result cache and usage are unavailable. */
  HISTORY: StringEnum(['on', 'off'] as const, { default: 'on' }),
  /** The folder of the embedded SQLite database (history.db) when DATABASE_URL is unset. */
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  /** postgres://user:password@host:port/db — history in PostgreSQL instead of SQLite. */
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATABASE_POOL_SIZE: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  HISTORY_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 36_500, default: 365 }),
  /** Records kept in memory while the database is unreachable; the oldest is dropped beyond. */
  HISTORY_BUFFER_SIZE: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
  /** Seconds an identical question (same image, instructions, language, detail, deployment) is answered from history; 0: off. */
  RESULT_CACHE_TTL_S: Type.Integer({ minimum: 0, maximum: 31_536_000, default: 604_800 }),
  /** caller: a caller's cache is its own; global: one caller's answer serves another's identical question. */
  RESULT_CACHE_SCOPE: StringEnum(['caller', 'global'] as const, { default: 'caller' }),
  /** Price in the caller's currency per million prompt (input) tokens, for usage's estimatedCost. */
  VISION_PRICE_INPUT_PER_MTOK: Type.Optional(Type.Number({ minimum: 0 })),
  VISION_PRICE_OUTPUT_PER_MTOK: Type.Optional(Type.Number({ minimum: 0 })),
  /** Signs thumbnail URLs; shared by every instance behind one address. At least 32 characters. */
  URL_SIGNING_KEY: Type.Optional(Type.String({ minLength: 32 })),
  THUMBNAIL_URL_TTL_S: Type.Integer({ minimum: 10, maximum: 86_400, default: 900 }),
  /** Event-loop utilisation (0–1, over the last second) above which thumbnails are skipped; 1: never skipped for load. */
  THUMBNAIL_SKIP_ABOVE_UTILISATION: Type.Number({ minimum: 0, maximum: 1, default: 0.8 })
})
export type HistoryEnv = Static<typeof HistoryEnv>

export type { DatabaseTarget }

export interface HistoryConfig {
  enabled: boolean
  database: DatabaseTarget
  retentionDays: number
  bufferSize: number
  resultCache: { ttlSeconds: number, scope: 'caller' | 'global' }
  prices: { inputPerMillion: number, outputPerMillion: number } | null
  /** signingKey null: each process makes a random one (development; URLs then work only on the instance that signed them). */
  thumbnails: { signingKey: Buffer | null, urlTtlSeconds: number, skipAboveUtilisation: number }
}

export function readHistoryConfig (raw: HistoryEnv): HistoryConfig {
  const enabled = raw.HISTORY === 'on'
  const input = raw.VISION_PRICE_INPUT_PER_MTOK
  const output = raw.VISION_PRICE_OUTPUT_PER_MTOK
  if ((input === undefined) !== (output === undefined)) {
    throw new ConfigError('invalid configuration: set both VISION_PRICE_INPUT_PER_MTOK and VISION_PRICE_OUTPUT_PER_MTOK, or neither')
  }
  return {
    enabled,
    database: raw.DATABASE_URL !== undefined
      ? { dialect: 'postgres', url: raw.DATABASE_URL, poolSize: raw.DATABASE_POOL_SIZE }
      : { dialect: 'sqlite', file: path.resolve(raw.DATA_DIR, 'history.db') },
    retentionDays: raw.HISTORY_RETENTION_DAYS,
    bufferSize: raw.HISTORY_BUFFER_SIZE,
    resultCache: { ttlSeconds: raw.RESULT_CACHE_TTL_S, scope: raw.RESULT_CACHE_SCOPE },
    prices: input !== undefined && output !== undefined ? { inputPerMillion: input, outputPerMillion: output } : null,
    thumbnails: {
      signingKey: raw.URL_SIGNING_KEY !== undefined ? Buffer.from(raw.URL_SIGNING_KEY) : null,
      urlTtlSeconds: raw.THUMBNAIL_URL_TTL_S,
      skipAboveUtilisation: raw.THUMBNAIL_SKIP_ABOVE_UTILISATION
    }
  }
}
