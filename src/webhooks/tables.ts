// The webhook tables as Kysely sees them (in the app's database, beside history's: the outbox must be written
// in the same transaction as the record it announces). Created by migrations/0002-webhooks.ts. Times are epoch milliseconds, as in history.
import type { Generated } from 'kysely'

/** The event types of the body's `type`, as the endpoint subscribes to them. */
export const EVENT_COMPLETED = 'identification.completed'
export const EVENT_FAILED = 'identification.failed'
/** A bulk job completed (its items are never announced one by one): `data` is the job, as a feature's payload builder makes it. */
export const EVENT_BULK_JOB_COMPLETED = 'bulk_job.completed'
export type WebhookEventType = typeof EVENT_COMPLETED | typeof EVENT_FAILED | typeof EVENT_BULK_JOB_COMPLETED

export interface WebhookEndpointsTable {
  id: string
  url: string
  description: string | null
  /** `whsec_…`, stored as is: it must be at hand to sign (see README, Webhooks). */
  secret: string
  /** The secret before the last rotation, still signing beside the new one until previous_secret_expires_at. */
  previous_secret: string | null
  previous_secret_expires_at: number | null
  created_at: number
  updated_at: number
  disabled_at: number | null
  disabled_reason: string | null
  last_success_at: number | null
  /** The first failure since the last success: 5 days of nothing but failures disables the endpoint. */
  failing_since: number | null
}

/** One row per event type an endpoint subscribes to: what the outbox insert joins on. */
export interface WebhookEndpointEventsTable {
  endpoint_id: string
  event_type: string
}

/** The outbox: one row per (event, endpoint), and one more per redelivery. */
export interface WebhookDeliveriesTable {
  id: Generated<number>
  endpoint_id: string
  /** `webhook-id`: the same for every attempt and redelivery of one event (the receiver's idempotency key). */
  message_id: string
  event_type: string
  identification_id: string
  /** When the event happened (the body's timestamp). */
  created_at: number
  /** pending, succeeded, failed (attempts exhausted, 410 Gone, identification gone). */
  state: string
  attempts: number
  next_attempt_at: number
  /** Claimed by an instance until then; an instance that died loses its claim when it passes. */
  lease_until: number | null
  leased_by: string | null
  completed_at: number | null
}

export interface WebhookAttemptsTable {
  delivery_id: number
  attempt: number
  started_at: number
  duration_ms: number
  /** The HTTP status; null when none came (timeout, refused, reset, SSRF refusal). */
  status: number | null
  error: string | null
  /** The first 64 KB of the response body. */
  response: string | null
}

/** A type, not an interface: `Kysely.withTables<T>()` wants one (an interface has no index signature). */
export type WebhookTables = {
  webhook_endpoints: WebhookEndpointsTable
  webhook_endpoint_events: WebhookEndpointEventsTable
  webhook_deliveries: WebhookDeliveriesTable
  webhook_attempts: WebhookAttemptsTable
}
