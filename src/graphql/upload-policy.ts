// Which upload policy a multipart request falls under: its operation's one root field, read from `operations`
// (parsed within the same token bound as any query). Anything else (a parse error, several fields, a query) is
// the default policy's: mercurius answers the document's own errors afterwards.
import { Kind, parse, type OperationDefinitionNode } from 'graphql'
import type { Operations } from './upload.ts'
import type { UploadPolicy } from './registry.ts'

export function policyFor (
  operations: Operations, policies: ReadonlyMap<string, UploadPolicy>, maxTokens: number
): UploadPolicy | undefined {
  if (policies.size === 0 || typeof operations.query !== 'string') return undefined
  let operation: OperationDefinitionNode | undefined
  try {
    const document = parse(operations.query, { maxTokens, noLocation: true })
    const definitions = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    const name = typeof operations.operationName === 'string' ? operations.operationName : undefined
    operation = name === undefined ? (definitions.length === 1 ? definitions[0] : undefined) : definitions.find(d => d.name?.value === name)
  } catch {
    return undefined
  }
  if (operation?.operation !== 'mutation') return undefined
  const selections = operation.selectionSet.selections
  if (selections.length !== 1 || selections[0]?.kind !== Kind.FIELD) return undefined
  return policies.get(selections[0].name.value)
}
