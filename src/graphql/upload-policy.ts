// Which upload policy a multipart request falls under: its operation's one root field, read from `operations`
// (parsed within the same token bound as any query). Anything else (a parse error, several fields, a query) is
// the default policy's: mercurius answers the document's own errors afterwards.
import { Kind, parse, type OperationDefinitionNode } from 'graphql'
import type { Operations } from './upload.ts'
import type { UploadPolicy } from './registry.ts'

/** Documents remembered, and the longest one remembered: clients send the same few mutations again and again. */
const REMEMBERED = 256
const REMEMBERED_QUERY_CHARS = 16 * 1024

export type PolicySelector = (operations: Operations) => UploadPolicy | undefined

/**
 * The policy for each request. A document's root field is remembered by its text (and operation name), so that the
 * parse, about 3 % of an identification's CPU, is paid once per document rather than per upload (mercurius keeps its
 * own parse cache; this one runs before it, while the body is still being read).
 */
export function createPolicySelector (policies: ReadonlyMap<string, UploadPolicy>, maxTokens: number): PolicySelector {
  const rootFields = new Map<string, string | null>()
  return operations => {
    if (policies.size === 0 || typeof operations.query !== 'string') return undefined
    const name = typeof operations.operationName === 'string' ? operations.operationName : undefined
    const key = `${name ?? ''}\u0000${operations.query}`
    let field = rootFields.get(key)
    if (field === undefined) {
      field = mutationRootField(operations.query, name, maxTokens)
      if (operations.query.length <= REMEMBERED_QUERY_CHARS) {
        if (rootFields.size >= REMEMBERED) rootFields.delete(rootFields.keys().next().value!) // the oldest goes
        rootFields.set(key, field)
      }
    }
    return field === null ? undefined : policies.get(field)
  }
}

/** The name of the operation's one root field when it is a mutation with exactly one; null otherwise. */
function mutationRootField (query: string, name: string | undefined, maxTokens: number): string | null {
  let operation: OperationDefinitionNode | undefined
  try {
    const document = parse(query, { maxTokens, noLocation: true })
    const definitions = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    operation = name === undefined ? (definitions.length === 1 ? definitions[0] : undefined) : definitions.find(d => d.name?.value === name)
  } catch {
    return null
  }
  if (operation?.operation !== 'mutation') return null
  const selections = operation.selectionSet.selections
  if (selections.length !== 1 || selections[0]?.kind !== Kind.FIELD) return null
  return selections[0].name.value
}
