// Webhooks' part of the GraphQL API: its SDL (webhooks.graphql, beside this file) and resolvers. Admin only,
// the arguments checked, then app.webhooks (read from the request's server: null when HISTORY=off).
import { readFileSync } from 'node:fs'
import { ANONYMOUS, requireRole } from '../callers/caller.ts'
import { BadUserInputError, StorageUnavailableError } from '../errors.ts'
import type { AppContext } from '../graphql/context.ts'
import type {
  MutationResolvers, QueryResolvers, WebhookDelivery as SchemaDelivery, WebhookEndpoint as SchemaEndpoint, WebhookEvent
} from '../graphql/generated/schema-types.ts'
import type { GraphqlPart } from '../graphql/registry.ts'
import type { Attempt, Delivery, Endpoint, Webhooks } from './public.ts'
import { EVENT_BULK_JOB_COMPLETED, EVENT_COMPLETED, EVENT_FAILED, type WebhookEventType } from './tables.ts'

const MAX_PAGE_SIZE = 100
const EVENT_TYPE: Record<WebhookEvent, WebhookEventType> = {
  IDENTIFICATION_COMPLETED: EVENT_COMPLETED,
  IDENTIFICATION_FAILED: EVENT_FAILED,
  BULK_JOB_COMPLETED: EVENT_BULK_JOB_COMPLETED
}
const EVENT_NAME: Record<WebhookEventType, WebhookEvent> = {
  [EVENT_COMPLETED]: 'IDENTIFICATION_COMPLETED',
  [EVENT_FAILED]: 'IDENTIFICATION_FAILED',
  [EVENT_BULK_JOB_COMPLETED]: 'BULK_JOB_COMPLETED'
}
const STATE = { pending: 'PENDING', succeeded: 'SUCCEEDED', failed: 'FAILED' } as const
/** Ids we hand out: UUIDs (endpoints) and integers (deliveries). Anything longer is none of ours. */
const MAX_ID_LENGTH = 64

function admin (ctx: AppContext): Webhooks {
  requireRole(ctx.caller ?? ANONYMOUS, 'Admin')
  const webhooks = ctx.request.server.webhooks
  if (webhooks === null) throw new StorageUnavailableError('Webhooks need history, which is off on this server (HISTORY=off).', undefined)
  return webhooks
}

function toEndpoint (endpoint: Endpoint): SchemaEndpoint {
  const { events, ...rest } = endpoint
  return { ...rest, events: events.map(event => EVENT_NAME[event]), enabled: endpoint.disabledAt === null }
}

function toDelivery (delivery: Delivery, attempts: Attempt[]): SchemaDelivery {
  return {
    id: delivery.id,
    endpointId: delivery.endpointId,
    webhookId: delivery.messageId,
    event: EVENT_NAME[delivery.eventType],
    identificationId: delivery.identificationId,
    createdAt: delivery.createdAt,
    state: STATE[delivery.state],
    nextAttemptAt: delivery.nextAttemptAt,
    completedAt: delivery.completedAt,
    attempts: attempts.map(({ status, ...attempt }) => ({ ...attempt, responseStatus: status }))
  }
}

function deliveryId (text: string): number | null {
  return /^[0-9]{1,15}$/.test(text) ? Number(text) : null
}

function decodeAfter (after: string | null | undefined): number | null {
  if (after == null) return null
  const id = after.length > 40 ? null : deliveryId(Buffer.from(after, 'base64url').toString('utf8'))
  if (id === null) throw new BadUserInputError('`after` is not a cursor this API gave out: pass an `endCursor` unchanged.', { argument: 'after' })
  return id
}

const webhookQueries: Pick<QueryResolvers, 'webhookEndpoints' | 'webhookDeliveries'> = {
  webhookEndpoints: async (_root, _args, ctx) => {
    const webhooks = admin(ctx)
    return (await webhooks.listEndpoints()).map(toEndpoint)
  },

  webhookDeliveries: async (_root, { endpointId, first, after }, ctx) => {
    const webhooks = admin(ctx)
    const size = first ?? 20
    if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
      throw new BadUserInputError(`\`first\` must be between 1 and ${MAX_PAGE_SIZE}.`, { argument: 'first' })
    }
    const afterId = decodeAfter(after)
    const empty = { edges: [], pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null } }
    if (endpointId.length > MAX_ID_LENGTH) return empty
    const { rows, hasNextPage } = await webhooks.listDeliveries(endpointId, size, afterId)
    const attempts = await webhooks.attemptsOf(rows.map(row => Number(row.id)))
    const edges = rows.map(row => ({ cursor: Buffer.from(row.id).toString('base64url'), node: toDelivery(row, attempts.get(Number(row.id)) ?? []) }))
    return {
      edges,
      pageInfo: { hasNextPage, hasPreviousPage: false, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null }
    }
  }
}

const webhookMutations: Pick<MutationResolvers,
  'createWebhookEndpoint' | 'updateWebhookEndpoint' | 'rotateWebhookSecret' | 'deleteWebhookEndpoint' | 'redeliverWebhook'> = {
    createWebhookEndpoint: async (_root, { url, events, description }, ctx) => {
      const webhooks = admin(ctx)
      const { endpoint, secret } = await webhooks.create(url, events.map(event => EVENT_TYPE[event]), description ?? null)
      return { endpoint: toEndpoint(endpoint), secret }
    },

    updateWebhookEndpoint: async (_root, { id, url, events, description, enabled }, ctx) => {
      const webhooks = admin(ctx)
      if (id.length > MAX_ID_LENGTH) return null
      const endpoint = await webhooks.update(id, {
        url: url ?? undefined,
        events: events == null ? undefined : events.map(event => EVENT_TYPE[event]),
        description: description === undefined ? undefined : description,
        enabled: enabled ?? undefined
      })
      return endpoint === undefined ? null : toEndpoint(endpoint)
    },

    rotateWebhookSecret: async (_root, { id }, ctx) => {
      const webhooks = admin(ctx)
      if (id.length > MAX_ID_LENGTH) return null
      const rotated = await webhooks.rotate(id)
      return rotated === undefined ? null : { endpoint: toEndpoint(rotated.endpoint), secret: rotated.secret }
    },

    deleteWebhookEndpoint: async (_root, { id }, ctx) => {
      const webhooks = admin(ctx)
      if (id.length > MAX_ID_LENGTH) return false
      return await webhooks.delete(id)
    },

    redeliverWebhook: async (_root, { deliveryId: text }, ctx) => {
      const webhooks = admin(ctx)
      const id = deliveryId(text)
      if (id === null) return null
      const delivery = await webhooks.redeliver(id)
      return delivery === undefined ? null : toDelivery(delivery, [])
    }
  }

/** Registered by the webhooks plugin whether or not webhooks are on: the schema is the same with HISTORY=off. */
export const webhooksGraphql: GraphqlPart = {
  name: 'webhooks',
  sdl: readFileSync(new URL('./webhooks.graphql', import.meta.url), 'utf8'),
  resolvers: { Query: webhookQueries, Mutation: webhookMutations }
}
