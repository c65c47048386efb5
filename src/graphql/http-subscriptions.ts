// A subscription runs over the WebSocket protocol (graphql-transport-ws on GET /graphql). Posted over
// plain HTTP, mercurius executes it as if it were a query and fails inside (500 INTERNAL_SERVER_ERROR):
// refuse it first, with a 400 that says where subscriptions are served. And tell errors.ts whether a
// failed field may make the response a 503 (which clients and proxies retry).
import { getOperationAST, Kind, type DocumentNode } from 'graphql'
import type { FastifyRequest } from 'fastify'
import { QueryRejectedError } from '../errors.ts'

/**
 * Whether the operation a request runs can be sent again without repeating anything that succeeded: a query,
 * or a mutation of a single field. Throws for a subscription (served over WebSocket only).
 */
export function checkHttpOperation (document: DocumentNode, request: FastifyRequest | undefined): { retrySafe: boolean } {
  const params = (request?.method === 'GET' ? request.query : request?.body) as { operationName?: unknown } | undefined
  const operationName = typeof params?.operationName === 'string' && params.operationName !== '' ? params.operationName : undefined
  const operation = getOperationAST(document, operationName)
  if (operation?.operation === 'subscription') throw subscriptionOverHttp()
  const selections = operation?.selectionSet.selections ?? []
  const oneField = selections.length === 1 && selections[0]?.kind === Kind.FIELD
  return { retrySafe: operation?.operation !== 'mutation' || oneField }
}

export function subscriptionOverHttp (): QueryRejectedError {
  return new QueryRejectedError('Subscriptions are served over WebSocket (the graphql-transport-ws protocol at GET /graphql), ' +
    'not over HTTP requests: open a WebSocket, or send a query or mutation.')
}
