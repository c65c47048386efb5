// Validation rules beyond the spec's: introspection can be turned off, and an operation may ask
// for at most one identification (each spends Azure quota), counted through its fragments.
import {
  GraphQLError, Kind, NoSchemaIntrospectionCustomRule,
  type ASTVisitor, type OperationDefinitionNode, type SelectionSetNode, type ValidationContext, type ValidationRule
} from 'graphql'

export const MAX_IDENTIFICATIONS_PER_OPERATION = 1

export function singleIdentificationRule (context: ValidationContext): ASTVisitor {
  return {
    OperationDefinition (operation: OperationDefinitionNode) {
      const count = countIdentifications(context, operation.selectionSet, new Set())
      if (count > MAX_IDENTIFICATIONS_PER_OPERATION) {
        context.reportError(new GraphQLError(
          `At most ${MAX_IDENTIFICATIONS_PER_OPERATION} identifyVehicle per operation (this one asks for ${count}).`, { nodes: operation }))
      }
    }
  }
}

/** identifyVehicle fields the selection would execute, fragments expanded (each spread counts). */
function countIdentifications (context: ValidationContext, selectionSet: SelectionSetNode, expanding: Set<string>): number {
  let count = 0
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value === 'identifyVehicle') count++
      if (selection.selectionSet) count += countIdentifications(context, selection.selectionSet, expanding)
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      count += countIdentifications(context, selection.selectionSet, expanding)
    } else {
      const name = selection.name.value
      const fragment = context.getFragment(name)
      if (fragment == null || expanding.has(name)) continue // unknown or cyclic: other rules report it
      expanding.add(name)
      count += countIdentifications(context, fragment.selectionSet, expanding)
      expanding.delete(name)
    }
  }
  return count
}

export function validationRules (introspection: boolean): ValidationRule[] {
  return introspection ? [singleIdentificationRule] : [singleIdentificationRule, NoSchemaIntrospectionCustomRule]
}
