// Bounds on what one GraphQL operation may cost, checked on the parsed document before graphql-js
// validates it (mercurius' preValidation hook), so that no rule, ours or the spec's, ever walks a
// document that expands to thousands of fields. Plus the introspection switch, a validation rule.
import { Location, NoSchemaIntrospectionCustomRule, type DocumentNode, type ValidationRule } from 'graphql'
import { QueryRejectedError } from '../errors.ts'
import { measureOperations } from './cost.ts'

/** Each identifyVehicle spends Azure quota and holds an upload: one per operation. */
export const MAX_IDENTIFICATIONS_PER_OPERATION = 1

export interface OperationLimits {
  /** Fields per operation, aliases and expanded fragments included (GRAPHQL_MAX_FIELDS). */
  maxFields: number
  /** Nesting below the root fields (GRAPHQL_MAX_DEPTH). */
  maxDepth: number
}

/** Throws GRAPHQL_VALIDATION_FAILED (400) for the first operation over a limit. */
export function checkOperationCost (document: DocumentNode, limits: OperationLimits): void {
  // mercurius falls back to JSON.parse when a query is not GraphQL: a JSON "AST" never reaches validation.
  if (!(document.loc instanceof Location)) throw invalid('The query must be GraphQL source text.')
  let operations
  try {
    operations = measureOperations(document)
  } catch (err) {
    if (err instanceof RangeError) throw tooDeep() // the call stack // only with GRAPHQL_MAX_TOKENS raised far past its default
    throw err
  }
  for (const operation of operations) {
    const name = operation.name === null ? 'The operation' : `Operation "${operation.name.slice(0, 64)}"`
    if (operation.identifications > MAX_IDENTIFICATIONS_PER_OPERATION) {
      throw invalid(`At most ${MAX_IDENTIFICATIONS_PER_OPERATION} identifyVehicle per operation ` +
        `(this one asks for ${format(operation.identifications)}).`)
    }
    if (operation.fields > limits.maxFields) {
      throw invalid(`${name} selects ${format(operation.fields)} fields (aliases and fragments expanded); at most ${limits.maxFields} are allowed.`)
    }
    if (operation.depth > limits.maxDepth) {
      throw invalid(`${name} is nested ${format(operation.depth)} levels deep; at most ${limits.maxDepth} are allowed.`)
    }
  }
}

export function validationRules (introspection: boolean): ValidationRule[] {
  return introspection ? [] : [NoSchemaIntrospectionCustomRule]
}

/** A document nested past what the parser or a walk's stack can take (RangeError: call stack). */
export function tooDeep (): QueryRejectedError {
  return invalid('The document is nested too deeply.')
}

function invalid (message: string): QueryRejectedError {
  return new QueryRejectedError(message)
}

/** Expanded counts can be astronomically large (2^n): say so without printing 1e+300. */
function format (count: number): string {
  return count > 1e9 ? 'more than 10^9' : String(count)
}
