// A client's graphql-transport-ws message, read once: the frame's text parsed, checked against the
// protocol, and rebuilt as a canonical message holding only the fields we use. connections.ts enforces
// the socket's rules on this message and hands mercurius its JSON, so that our bookkeeping and mercurius
// act on one and the same message however the client spelled it (JSON escapes, duplicate keys, spacing).

/** The longest subscription id, in UTF-8 bytes (graphql-ws' client sends UUIDs, 36). */
export const MAX_ID_BYTES = 64

export type ClientMessage =
  | { type: 'connection_init', payload: Record<string, unknown> | null }
  | { type: 'ping' | 'pong' }
  | { type: 'subscribe', id: string, payload: SubscribePayload }
  | { type: 'complete', id: string }

export interface SubscribePayload {
  query: string
  variables: Record<string, unknown> | null
  operationName: string | null
}

/** A message the protocol does not have (the socket is closed with 4400 and this text). */
export class BadMessageError extends Error {
  override name = 'BadMessageError'
}

/** The frame's text as a canonical message; throws BadMessageError when it is not one the protocol has. */
export function parseClientMessage (text: string): ClientMessage {
  let message: unknown
  try {
    message = JSON.parse(text, refuseProtoKeys)
  } catch (err) {
    if (err instanceof BadMessageError) throw err
    throw new BadMessageError('Invalid message: not JSON')
  }
  if (!isPlainObject(message)) throw new BadMessageError('Invalid message: not an object')
  const { type } = message
  switch (type) {
    case 'connection_init':
      return { type, payload: optionalObject(message.payload, 'payload') }
    case 'ping':
    case 'pong':
      optionalObject(message.payload, 'payload')
      return { type }
    case 'subscribe':
      return { type, id: idOf(message.id), payload: subscribePayload(message.payload) }
    case 'complete':
      return { type, id: idOf(message.id) }
    default:
      throw new BadMessageError('Invalid message type')
  }
}

/** The message's JSON as mercurius reads it: only the canonical fields. */
export function serialise (message: ClientMessage): string {
  // connection_init's payload (the credentials) was read here: mercurius gets none (it would copy them into the upgrade's headers).
  if (message.type === 'connection_init') return JSON.stringify({ type: message.type })
  return JSON.stringify(message)
}

function subscribePayload (payload: unknown): SubscribePayload {
  if (!isPlainObject(payload)) throw new BadMessageError('Invalid message: subscribe needs a payload')
  const { query, variables, operationName } = payload
  // A query that is not text would be taken by mercurius as a parsed document: always text here.
  if (typeof query !== 'string') throw new BadMessageError('Invalid message: the query must be a string')
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') {
    throw new BadMessageError('Invalid message: operationName must be a string')
  }
  optionalObject(payload.extensions, 'extensions') // allowed by the protocol, not used: not passed on
  return { query, variables: optionalObject(variables, 'variables'), operationName: operationName ?? null }
}

function idOf (id: unknown): string {
  if (typeof id !== 'string' || id.length === 0) throw new BadMessageError('Invalid message: the id must be a non-empty string')
  if (Buffer.byteLength(id) > MAX_ID_BYTES) throw new BadMessageError(`Invalid message: the id is longer than ${MAX_ID_BYTES} bytes`)
  return id
}

function optionalObject (value: unknown, name: string): Record<string, unknown> | null {
  if (value === undefined || value === null) return null
  if (!isPlainObject(value)) throw new BadMessageError(`Invalid message: ${name} must be an object`)
  return value
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * mercurius parses with secure-json-parse, which refuses `__proto__` and `constructor.prototype` keys:
 * refused here too, so that no message we accept is one mercurius cannot read.
 */
function refuseProtoKeys (key: string, value: unknown): unknown {
  if (key === '__proto__' || (key === 'constructor' && isPlainObject(value) && Object.hasOwn(value, 'prototype'))) {
    throw new BadMessageError('Invalid message: forbidden key')
  }
  return value
}
