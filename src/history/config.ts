// History: whether identifications are kept (where: src/database/config.ts), for how long, how many
// records may wait while the database is down, and what the features built on it (result cache, usage
// prices) need.
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError, StringEnum } from '../config-support.ts'

export const HistoryEnv = Type.Object({
  /** off: nothing is recorded, and history, idempotency, the result cache and usage are unavailable. */
  HISTORY: StringEnum(['on', 'off'] as const, { default: 'on' }),
  HISTORY_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 36_500, default: 365 }),
  /** Records kept in memory while the database is unreachable; the oldest is dropped beyond. */
  HISTORY_BUFFER_SIZE: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
  /** Seconds an identical question (same image, instructions, language, detail, deployment) is answered from history; 0: off. */
  RESULT_CACHE_TTL_S: Type.Integer({ minimum: 0, maximum: 31_536_000, default: 604_800 }),
  /** caller: a caller's cache is its own; global: one caller's answer serves another's identical question. */
  RESULT_CACHE_SCOPE: StringEnum(['caller', 'global'] as const, { default: 'caller' }),
  /** Price in the caller's currency per million prompt (input) tokens, for usage's estimatedCost. */
  VISION_PRICE_INPUT_PER_MTOK: Type.Optional(Type.Number({ minimum: 0 })),
  VISION_PRICE_OUTPUT_PER_MTOK: Type.Optional(Type.Number({ minimum: 0 }))
})
export type HistoryEnv = Static<typeof HistoryEnv>

export interface HistoryConfig {
  enabled: boolean
  retentionDays: number
  bufferSize: number
  resultCache: { ttlSeconds: number, scope: 'caller' | 'global' }
  prices: { inputPerMillion: number, outputPerMillion: number } | null
  /**
   * Prices of Global Batch tokens (VISION_BATCH_PRICE_*_PER_MTOK, read with the bulk config: src/config.ts sets them
   * from it); here half of `prices`, their default.
   */
  batchPrices: { inputPerMillion: number, outputPerMillion: number } | null
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
    retentionDays: raw.HISTORY_RETENTION_DAYS,
    bufferSize: raw.HISTORY_BUFFER_SIZE,
    resultCache: { ttlSeconds: raw.RESULT_CACHE_TTL_S, scope: raw.RESULT_CACHE_SCOPE },
    prices: input !== undefined && output !== undefined ? { inputPerMillion: input, outputPerMillion: output } : null,
    batchPrices: input !== undefined && output !== undefined ? { inputPerMillion: input / 2, outputPerMillion: output / 2 } : null
  }
}
