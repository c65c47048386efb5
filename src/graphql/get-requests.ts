// GET /graphql carries a query in the URL. mercurius looks its operation up without checking that it
// exists (a 500 for an unknown operationName) and refuses mutations with an uncoded error: check both
// here first, on a parse bounded like every other (GET queries are rare: GraphiQL and clients POST).
import { getOperationAST, parse, type DocumentNode } from 'graphql'
import type { FastifyRequest } from 'fastify'
import { MethodNotAllowedError, QueryRejectedError } from '../errors.ts'
import { subscriptionOverHttp } from './http-subscriptions.ts'

export function checkGetOperation (request: FastifyRequest, maxTokens: number): void {
  if (request.method !== 'GET') return
  const params = request.query as Record<string, unknown>
  if (params.operationName === '') delete params.operationName // empty means none, as in a POST body
  const { query, operationName } = params
  if (typeof query !== 'string' || query === '') return // mercurius answers these
  let document: DocumentNode
  try {
    document = parse(query, { maxTokens })
  } catch {
    return // mercurius reports the syntax error, coded
  }
  const operation = getOperationAST(document, typeof operationName === 'string' ? operationName : undefined)
  if (operation == null) {
    throw new QueryRejectedError(typeof operationName === 'string'
      ? `Unknown operation named "${operationName.slice(0, 64)}".`
      : 'The document has several operations: say which one with operationName.')
  }
  if (operation.operation === 'subscription') throw subscriptionOverHttp()
  if (operation.operation !== 'query') {
    throw new MethodNotAllowedError(`A ${operation.operation} cannot be sent with GET: send it with POST.`, ['POST'])
  }
}
