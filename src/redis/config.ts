// Redis (REDIS_URL): shared by the rate limits' counters and the subscriptions' channel between instances.
import { Type, type Static } from '@sinclair/typebox'

export const RedisEnv = Type.Object({
  /** Shares the rate limits' counters and live updates between instances; unset: each instance on its own. */
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' }))
})
export type RedisEnv = Static<typeof RedisEnv>

export interface RedisConfig {
  url: string | null
}

export function readRedisConfig (raw: RedisEnv): RedisConfig {
  return { url: raw.REDIS_URL ?? null }
}
