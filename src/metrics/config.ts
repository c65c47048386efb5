// GET /metrics: the bearer token it asks for.
import { Type, type Static } from '@sinclair/typebox'

export const MetricsEnv = Type.Object({
  /** Unset: /metrics answers anyone who reaches it. */
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16 }))
})
export type MetricsEnv = Static<typeof MetricsEnv>

export interface MetricsConfig {
  token: string | null
}

export function readMetricsConfig (raw: MetricsEnv): MetricsConfig {
  return { token: raw.METRICS_TOKEN ?? null }
}
