// What other parts of the app see of webhooks: `app.webhooks` and the shapes it returns. Types only
// (importing this costs nothing at run time); the store, the outbox and the delivery worker stay inside.
import type { Kysely } from 'kysely'
import type { WebhookEventType } from './tables.ts'

export type { WebhookEventType }

export interface Endpoint {
  id: string
  url: string
  description: string | null
  events: WebhookEventType[]
  createdAt: Date
  updatedAt: Date
  disabledAt: Date | null
  disabledReason: string | null
  lastSuccessAt: Date | null
  failingSince: Date | null
  /** Until then the previous secret signs too; null when there is none. */
  secretRotationEndsAt: Date | null
}

export interface Attempt {
  attempt: number
  startedAt: Date
  durationMs: number
  status: number | null
  error: string | null
  response: string | null
}

export interface Delivery {
  id: string
  endpointId: string
  messageId: string
  eventType: WebhookEventType
  identificationId: string
  createdAt: Date
  state: 'pending' | 'succeeded' | 'failed'
  attemptCount: number
  nextAttemptAt: Date | null
  completedAt: Date | null
}

export interface EndpointChange {
  url?: string
  events?: readonly WebhookEventType[]
  description?: string | null
  enabled?: boolean
}

/**
 * Webhook endpoints and their deliveries. Every method checks its arguments (BAD_USER_INPUT, WEBHOOK_URL_REFUSED)
 * and turns a database failure into STORAGE_UNAVAILABLE; authorisation is the caller's (the GraphQL resolvers').
 */
export interface Webhooks {
  /** Every endpoint, oldest first. */
  listEndpoints (): Promise<Endpoint[]>
  /** An endpoint's deliveries, newest first, `size` of them after the delivery `afterId` (keyset). */
  listDeliveries (endpointId: string, size: number, afterId: number | null): Promise<{ rows: Delivery[], hasNextPage: boolean }>
  /** The attempts of each delivery, by delivery id (a delivery with none is absent). */
  attemptsOf (deliveryIds: readonly number[]): Promise<Map<number, Attempt[]>>
  /** Sends a delivery's event again as a new delivery (same `webhook-id`), now; undefined when there is no such delivery. */
  redeliver (deliveryId: number): Promise<Delivery | undefined>
  create (url: string, events: readonly WebhookEventType[], description: string | null): Promise<{ endpoint: Endpoint, secret: string }>
  update (id: string, change: EndpointChange): Promise<Endpoint | undefined>
  rotate (id: string): Promise<{ endpoint: Endpoint, secret: string } | undefined>
  delete (id: string): Promise<boolean>
}

/** Another feature's event (not an identification's): how its body's `data` is made when it is delivered. */
export interface FeatureEvent {
  type: WebhookEventType
  /** The subject's data as the API shows it; undefined when it is gone (nothing is sent). */
  payload (subjectId: string): Promise<Record<string, unknown> | undefined>
}

export interface WebhookEvents {
  /** Declares a feature's event type; before the app is ready. */
  registerEventType (event: FeatureEvent): void
  /**
   * Writes the event's deliveries (one per enabled endpoint subscribed to it) in the caller's transaction `trx`, so
   * that the event is announced exactly when what it announces is committed. `subjectId`: at most 36 characters.
   */
  enqueue (trx: Kysely<any>, type: WebhookEventType, subjectId: string, createdAt: number): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Webhook endpoints and their delivery; null when HISTORY=off. */
    webhooks: (Webhooks & WebhookEvents) | null
  }
}
