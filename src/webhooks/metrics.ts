// Webhooks' metrics, declared by webhooks in the app's registry (names, help and labels are the public contract).
import { Counter } from 'prom-client'
import type { Metrics } from '../metrics/registry.ts'

export interface WebhookGauges {
  /** Deliveries waiting for an attempt, all instances (as last counted by the worker). */
  pending: () => number
  /** Endpoints disabled, as last counted. */
  disabled: () => number
  /** This instance's attempts in flight. */
  inFlight: () => number
}

/** Declares the gauges (read at scrape time) and returns what counts each attempt's outcome. */
export function webhookMetrics (metrics: Metrics, gauges: WebhookGauges): { attempt: (outcome: 'succeeded' | 'retried' | 'failed') => void } {
  const attempts = new Counter({
    name: 'agrivision_webhook_attempts_total',
    help: 'Webhook delivery attempts by outcome: succeeded, retried (failed, another attempt scheduled), failed (given up).',
    labelNames: ['outcome'] as const,
    registers: [metrics.registry]
  })
  metrics.gauge('agrivision_webhook_deliveries_pending', 'Webhook deliveries waiting for an attempt (all instances).', gauges.pending)
  metrics.gauge('agrivision_webhook_endpoints_disabled', 'Webhook endpoints disabled (410 Gone, failing for days, by an administrator).', gauges.disabled)
  metrics.gauge('agrivision_webhook_attempts_in_flight', 'Webhook attempts in flight on this instance.', gauges.inFlight)
  return { attempt: outcome => attempts.inc({ outcome }) }
}
