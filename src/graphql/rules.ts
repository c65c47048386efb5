// Validation rules beyond the spec's: introspection can be turned off, and an operation may ask
// for at most one identification (each spends Azure quota).
import { GraphQLError, NoSchemaIntrospectionCustomRule, type ValidationContext, type ASTVisitor, type ValidationRule } from 'graphql'

export const MAX_IDENTIFICATIONS_PER_OPERATION = 1

export function singleIdentificationRule (context: ValidationContext): ASTVisitor {
  let count = 0
  return {
    OperationDefinition: { enter () { count = 0 } },
    Field (node) {
      if (node.name.value !== 'identifyVehicle') return
      if (++count > MAX_IDENTIFICATIONS_PER_OPERATION) {
        context.reportError(new GraphQLError(`At most ${MAX_IDENTIFICATIONS_PER_OPERATION} identifyVehicle per operation.`, { nodes: node }))
      }
    }
  }
}

export function validationRules (introspection: boolean): ValidationRule[] {
  return introspection ? [singleIdentificationRule] : [singleIdentificationRule, NoSchemaIntrospectionCustomRule]
}
