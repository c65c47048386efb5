// A subscription runs over the WebSocket protocol (graphql-transport-ws on GET /graphql). Posted over
// plain HTTP, mercurius executes it as if it were a query and fails inside (500 INTERNAL_SERVER_ERROR):
// refuse it first, with a 400 that says where subscriptions are served.
import { getOperationAST, type DocumentNode } from 'graphql'
import type { FastifyRequest } from 'fastify'
import { QueryRejectedError } from '../errors.ts'

export function checkNotSubscriptionOverHttp (document: DocumentNode, request: FastifyRequest | undefined): void {
  const params = (request?.method === 'GET' ? request.query : request?.body) as { operationName?: unknown } | undefined
  const operationName = typeof params?.operationName === 'string' && params.operationName !== '' ? params.operationName : undefined
  if (getOperationAST(document, operationName)?.operation === 'subscription') throw subscriptionOverHttp()
}

export function subscriptionOverHttp (): QueryRejectedError {
  return new QueryRejectedError('Subscriptions are served over WebSocket (the graphql-transport-ws protocol at GET /graphql), ' +
    'not over HTTP requests: open a WebSocket, or send a query or mutation.')
}
