// Subscriptions (live updates over WebSocket): how many a caller and the whole process may hold, how
// big and how frequent a client's messages may be, how long a socket may stay silent before
// authenticating, and how much may wait to be sent to a socket that does not read.
// Across instances they share REDIS_URL (src/limits/config.ts) with the rate limits.
import { Type, type Static } from '@sinclair/typebox'

export const SubscriptionsEnv = Type.Object({
  /** Active subscriptions per caller (all its sockets together); also the most authenticated sockets a caller keeps. */
  SUBSCRIPTIONS_PER_CALLER: Type.Integer({ minimum: 1, maximum: 10_000, default: 5 }),
  /** Active subscriptions on this instance, every caller together; also the most WebSocket connections it keeps. */
  MAX_SUBSCRIPTIONS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
  /** The largest WebSocket message a client may send (a subscribe message is a few hundred bytes); bigger: closed with 1009. */
  SUBSCRIPTIONS_MAX_PAYLOAD_BYTES: Type.Integer({ minimum: 1024, maximum: 1_048_576, default: 65_536 }),
  /** How long a new socket has to send `connection_init`; then it is closed with 4408. */
  SUBSCRIPTIONS_INIT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 10_000 }),
  /** How long an authenticated socket may hold no subscription; then it is closed with 1000. */
  SUBSCRIPTIONS_IDLE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 60_000 }),
  /** How often the server pings an idle socket (keeps proxies from closing it); 0: never. */
  SUBSCRIPTIONS_KEEPALIVE_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 30_000 }),
  /** Messages one socket may send per second, and in a burst (a client sends a few a minute); beyond: closed with 1008. */
  SUBSCRIPTIONS_MESSAGES_PER_SECOND: Type.Integer({ minimum: 1, maximum: 1_000, default: 10 }),
  /** Bytes that may wait to be sent to one socket (frames unwritten, events queued); beyond: closed with 1013. */
  SUBSCRIPTIONS_MAX_QUEUED_BYTES: Type.Integer({ minimum: 65_536, maximum: 67_108_864, default: 1_048_576 })
})
export type SubscriptionsEnv = Static<typeof SubscriptionsEnv>

export interface SubscriptionsConfig {
  perCaller: number
  max: number
  maxPayloadBytes: number
  initTimeoutMs: number
  idleTimeoutMs: number
  keepAliveMs: number
  messagesPerSecond: number
  maxQueuedBytes: number
}

export function readSubscriptionsConfig (raw: SubscriptionsEnv): SubscriptionsConfig {
  return {
    perCaller: raw.SUBSCRIPTIONS_PER_CALLER,
    max: raw.MAX_SUBSCRIPTIONS,
    maxPayloadBytes: raw.SUBSCRIPTIONS_MAX_PAYLOAD_BYTES,
    initTimeoutMs: raw.SUBSCRIPTIONS_INIT_TIMEOUT_MS,
    idleTimeoutMs: raw.SUBSCRIPTIONS_IDLE_TIMEOUT_MS,
    keepAliveMs: raw.SUBSCRIPTIONS_KEEPALIVE_MS,
    messagesPerSecond: raw.SUBSCRIPTIONS_MESSAGES_PER_SECOND,
    maxQueuedBytes: raw.SUBSCRIPTIONS_MAX_QUEUED_BYTES
  }
}
