// How tests talk to the app over app.inject: GraphQL response types and the send helpers, in one place.
import type { FastifyInstance } from 'fastify'
import { encodeParts, identifyBody, type EncodedBody, type IdentifyVariables, type Part } from './multipart.ts'

export interface GraphQLErrorBody {
  message: string
  extensions: { code: string, [key: string]: unknown }
  path?: Array<string | number>
  locations?: Array<{ line: number, column: number }>
}

export interface GraphQLResponse<Data = any> {
  data: Data | null
  errors?: GraphQLErrorBody[]
}

export interface Answer<Data = any> {
  statusCode: number
  headers: Record<string, unknown>
  body: GraphQLResponse<Data>
  /** The body as sent, to search for what must never be in it. */
  raw: string
}

/** A multipart request as encoded (the preflight header included unless `headers` replace it). */
export async function send<Data = any> (
  app: FastifyInstance, body: EncodedBody, headers: Record<string, string> = {}
): Promise<Answer<Data>> {
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: body.payload, headers: { ...body.headers, ...headers } })
  return { statusCode: res.statusCode, headers: res.headers, body: res.json(), raw: res.payload }
}

export async function sendParts<Data = any> (app: FastifyInstance, parts: Part[], headers?: Record<string, string>): Promise<Answer<Data>> {
  return await send(app, await encodeParts(parts, headers))
}

/** A JSON POST: `{ query, variables }` or any other body, to try malformed ones. */
export async function sendJson<Data = any> (
  app: FastifyInstance, payload: unknown, headers: Record<string, string> = {}
): Promise<Answer<Data>> {
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: payload as object, headers })
  return { statusCode: res.statusCode, headers: res.headers, body: res.json(), raw: res.payload }
}

/** One identification of `file`, as a front end sends it. */
export async function identify<Data = any> (
  app: FastifyInstance, file: Buffer, { variables, headers }: { variables?: IdentifyVariables, headers?: Record<string, string> } = {}
): Promise<Answer<Data>> {
  return await send(app, await identifyBody(file, variables), headers)
}
