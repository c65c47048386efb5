// What the webhook tests share: an app with an Admin and an Identify API key, the GraphQL operations
// that manage endpoints, and waits with deadlines.
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { newApiKey } from '../../src/callers/api-keys.ts'
import type { Resolver } from '../../src/webhooks/ssrf.ts'
import { buildTestApp } from '../helper.ts'
import { sendJson, send, type Answer } from './http.ts'
import { identifyBody } from './multipart.ts'
import { jpeg, text } from './images.ts'

export const ADMIN = newApiKey('admin')
export const IDENTIFY = newApiKey('dashboard')

export const API_KEY_ENV = {
  AUTH_MODE: 'apikey',
  API_KEY_HASHES: `${ADMIN.entry}:VehicleIdentification.Identify+VehicleIdentification.Admin, ${IDENTIFY.entry}`
}

/** A schedule short enough for tests: 4 attempts, 200 ms apart. */
export const FAST_ENV = {
  ...API_KEY_ENV,
  WEBHOOK_ALLOW_LOOPBACK: 'true',
  WEBHOOK_RETRY_SCHEDULE: '0,0.2,0.2,0.2',
  WEBHOOK_POLL_MS: '50',
  WEBHOOK_TIMEOUT_MS: '2000',
  // These tests are not about load shedding: a busy shared machine must not refuse their identifications.
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0'
}

export const admin = { 'x-api-key': ADMIN.key }
export const identifier = { 'x-api-key': IDENTIFY.key }

export async function buildWebhookApp (
  t: Test, env: Record<string, string> = {}, webhooks: { resolve?: Resolver, now?: () => number } = {}
): Promise<FastifyInstance> {
  return await buildTestApp(t, { env: { ...FAST_ENV, ...env }, webhooks })
}

export const ENDPOINT_FIELDS = 'id url events description enabled disabledAt disabledReason lastSuccessAt failingSince secretRotationEndsAt'

export async function gql (app: FastifyInstance, query: string, variables: Record<string, unknown> = {}, headers = admin): Promise<Answer> {
  return await sendJson(app, { query, variables }, headers)
}

export async function createEndpoint (
  app: FastifyInstance, url: string, events: string[] = ['IDENTIFICATION_COMPLETED'], description?: string
): Promise<{ id: string, secret: string, answer: Answer }> {
  const answer = await gql(app, `mutation ($url: String!, $events: [WebhookEvent!]!, $description: String) {
    createWebhookEndpoint(url: $url, events: $events, description: $description) { secret endpoint { ${ENDPOINT_FIELDS} } } }`,
  { url, events, description })
  const created = answer.body.data?.createWebhookEndpoint
  return { id: created?.endpoint.id, secret: created?.secret, answer }
}

export async function endpoints (app: FastifyInstance): Promise<any[]> {
  const answer = await gql(app, `{ webhookEndpoints { ${ENDPOINT_FIELDS} } }`)
  return answer.body.data.webhookEndpoints
}

export async function deliveries (app: FastifyInstance, endpointId: string, first = 100, after?: string): Promise<any> {
  const answer = await gql(app, `query ($id: ID!, $first: Int, $after: String) { webhookDeliveries(endpointId: $id, first: $first, after: $after) {
    edges { cursor node { id endpointId webhookId event identificationId createdAt state nextAttemptAt completedAt
      attempts { attempt startedAt durationMs responseStatus error response } } }
    pageInfo { hasNextPage endCursor } } }`, { id: endpointId, first, after })
  if (answer.body.errors !== undefined) throw new Error(JSON.stringify(answer.body.errors))
  return answer.body.data.webhookDeliveries
}

const photo = await jpeg(64, 48)

/** An identification by the Identify key; its id. */
export async function identify (app: FastifyInstance): Promise<string> {
  const answer = await send(app, await identifyBody(photo), identifier)
  if (answer.body.data?.identifyVehicle?.id === undefined) throw new Error(`identification failed: ${answer.raw}`)
  return answer.body.data.identifyVehicle.id
}

/** An identification that fails (not an image): BAD_USER_INPUT. */
export async function identifyFailing (app: FastifyInstance): Promise<void> {
  const answer = await send(app, await identifyBody(text), identifier)
  if (answer.body.errors === undefined) throw new Error('expected a failure')
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

export async function waitFor (check: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}
