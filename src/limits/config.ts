// Limits per caller and for the whole process: request rates, vision slots and their queue, upload
// bytes in flight, load shedding.
import { Type, type Static } from '@sinclair/typebox'

const MiB = 1024 * 1024

export const LimitsEnv = Type.Object({
  RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 0, maximum: 100_000, default: 30 }),
  GRAPHQL_RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 600 }),
  VISION_MAX_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 1024, default: 16 }),
  VISION_MAX_CONCURRENCY_PER_CALLER: Type.Integer({ minimum: 1, maximum: 1024, default: 4 }),
  VISION_QUEUE_SIZE: Type.Integer({ minimum: 0, maximum: 10_000, default: 64 }),
  VISION_QUEUE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 30_000 }),
  UPLOAD_BYTES_IN_FLIGHT: Type.Integer({ minimum: 1 * MiB, maximum: 64 * 1024 * MiB, default: 256 * MiB }),
  // By default room for VISION_MAX_CONCURRENCY_PER_CALLER (4) uploads of MAX_UPLOAD_BYTES (20 MiB) and their framing.
  UPLOAD_BYTES_IN_FLIGHT_PER_CALLER: Type.Integer({ minimum: 64 * 1024, maximum: 64 * 1024 * MiB, default: 96 * MiB }),
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, default: 1_000 }),
  PRESSURE_MAX_HEAP_USED_BYTES: Type.Integer({ minimum: 0, default: 0 }),
  PRESSURE_MAX_RSS_BYTES: Type.Integer({ minimum: 0, default: 0 })
})
export type LimitsEnv = Static<typeof LimitsEnv>

export interface RateLimitConfig {
  /** Identifications per caller per minute; 0: no limit. */
  ratePerMinute: number
  /** Other GraphQL operations per caller per minute; 0: no limit. */
  operationsPerMinute: number
}

export interface OverloadConfig {
  maxConcurrency: number
  /** Slots (held or waited for) per caller, so one caller cannot take them all. */
  maxConcurrencyPerCaller: number
  queueSize: number
  queueTimeoutMs: number
  /** Bytes of uploads being received or in progress, every caller together. */
  uploadBytesInFlight: number
  /** The same, for one caller. */
  uploadBytesInFlightPerCaller: number
  maxEventLoopDelayMs: number
  maxHeapUsedBytes: number
  maxRssBytes: number
}

export interface LimitsConfig {
  rates: RateLimitConfig
  overload: OverloadConfig
}

export function readLimitsConfig (raw: LimitsEnv): LimitsConfig {
  return {
    rates: {
      ratePerMinute: raw.RATE_LIMIT_PER_MINUTE,
      operationsPerMinute: raw.GRAPHQL_RATE_LIMIT_PER_MINUTE
    },
    overload: {
      maxConcurrency: raw.VISION_MAX_CONCURRENCY,
      maxConcurrencyPerCaller: raw.VISION_MAX_CONCURRENCY_PER_CALLER,
      queueSize: raw.VISION_QUEUE_SIZE,
      queueTimeoutMs: raw.VISION_QUEUE_TIMEOUT_MS,
      uploadBytesInFlight: raw.UPLOAD_BYTES_IN_FLIGHT,
      uploadBytesInFlightPerCaller: raw.UPLOAD_BYTES_IN_FLIGHT_PER_CALLER,
      maxEventLoopDelayMs: raw.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
      maxHeapUsedBytes: raw.PRESSURE_MAX_HEAP_USED_BYTES,
      maxRssBytes: raw.PRESSURE_MAX_RSS_BYTES
    }
  }
}
