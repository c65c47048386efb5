// Webhooks: how deliveries are retried, timed out and bounded, and which URLs an endpoint may have.
// The defaults are Standard Webhooks' (retry schedule, 15 s per attempt); tests compress them.
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError, readList } from '../config-support.ts'

/** Seconds before each attempt: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (Standard Webhooks). */
export const DEFAULT_RETRY_SCHEDULE_S = [0, 5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400]

export const WebhooksEnv = Type.Object({
  /** Comma-separated seconds before each attempt (the first is usually 0); as many attempts as items. */
  WEBHOOK_RETRY_SCHEDULE: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
  /** One attempt's limit: connect, send, response headers and the first 64 KB of its body. */
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 15_000 }),
  /** An endpoint whose every delivery failed for this long since its last success is disabled (5 days). */
  WEBHOOK_DISABLE_AFTER_FAILING_S: Type.Integer({ minimum: 1, maximum: 31_536_000, default: 432_000 }),
  /** How long the previous secret still signs (beside the new one) after rotateWebhookSecret (24 h). */
  WEBHOOK_ROTATION_OVERLAP_S: Type.Integer({ minimum: 0, maximum: 604_800, default: 86_400 }),
  /** Attempts in flight per instance, in total and to one endpoint. */
  WEBHOOK_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 1000, default: 32 }),
  WEBHOOK_CONCURRENCY_PER_ENDPOINT: Type.Integer({ minimum: 1, maximum: 100, default: 4 }),
  /** How often the outbox is looked at for due deliveries (new identifications also wake the worker). */
  WEBHOOK_POLL_MS: Type.Integer({ minimum: 20, maximum: 60_000, default: 1000 }),
  WEBHOOK_MAX_ENDPOINTS: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }),
  /** How long a completed identification's delivery waits for its thumbnail (made just after the answer); then sent without. */
  WEBHOOK_THUMBNAIL_WAIT_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 2_000 }),
  /** true: plain http to loopback addresses (127.0.0.0/8, ::1) is allowed. For tests and local receivers only. */
  WEBHOOK_ALLOW_LOOPBACK: Type.Boolean({ default: false }),
  /** The service's public origin (https://vision.example.com), so that thumbnail URLs in webhook bodies are absolute. */
  PUBLIC_BASE_URL: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 500 }))
})
export type WebhooksEnv = Static<typeof WebhooksEnv>

export interface WebhooksConfig {
  retryScheduleMs: number[]
  timeoutMs: number
  /** A claimed attempt not finished by then (its instance died) is taken up again by any instance. */
  leaseMs: number
  disableAfterFailingMs: number
  rotationOverlapMs: number
  concurrency: number
  concurrencyPerEndpoint: number
  pollMs: number
  thumbnailWaitMs: number
  maxEndpoints: number
  allowLoopback: boolean
  publicBaseUrl: string | null
}

export function readWebhooksConfig (raw: WebhooksEnv, production = false): WebhooksConfig {
  if (raw.WEBHOOK_ALLOW_LOOPBACK && production) {
    throw new ConfigError('invalid configuration: WEBHOOK_ALLOW_LOOPBACK=true opens plain http to this machine\'s own ports; it is for tests, not NODE_ENV=production')
  }
  let schedule = DEFAULT_RETRY_SCHEDULE_S
  if (raw.WEBHOOK_RETRY_SCHEDULE !== undefined) {
    schedule = readList(raw.WEBHOOK_RETRY_SCHEDULE).map(Number)
    if (schedule.length === 0 || schedule.length > 50 || schedule.some(s => !Number.isFinite(s) || s < 0 || s > 604_800)) {
      throw new ConfigError('invalid configuration: WEBHOOK_RETRY_SCHEDULE must be 1 to 50 comma-separated seconds, each 0 to 604800')
    }
  }
  const base = raw.PUBLIC_BASE_URL === undefined ? null : URL.parse(raw.PUBLIC_BASE_URL)
  if (base === null && raw.PUBLIC_BASE_URL !== undefined) throw new ConfigError('invalid configuration: PUBLIC_BASE_URL is not a valid URL')
  return {
    retryScheduleMs: schedule.map(s => Math.round(s * 1000)),
    timeoutMs: raw.WEBHOOK_TIMEOUT_MS,
    leaseMs: 2 * raw.WEBHOOK_TIMEOUT_MS + 5_000,
    disableAfterFailingMs: raw.WEBHOOK_DISABLE_AFTER_FAILING_S * 1000,
    rotationOverlapMs: raw.WEBHOOK_ROTATION_OVERLAP_S * 1000,
    concurrency: raw.WEBHOOK_CONCURRENCY,
    concurrencyPerEndpoint: raw.WEBHOOK_CONCURRENCY_PER_ENDPOINT,
    pollMs: raw.WEBHOOK_POLL_MS,
    thumbnailWaitMs: raw.WEBHOOK_THUMBNAIL_WAIT_MS,
    maxEndpoints: raw.WEBHOOK_MAX_ENDPOINTS,
    allowLoopback: raw.WEBHOOK_ALLOW_LOOPBACK,
    publicBaseUrl: base === null ? null : base.origin
  }
}
