// What an operation would cost, measured on the parsed document BEFORE graphql-js validates it:
// fields it would resolve (aliases included, fragments expanded), identifyVehicle fields (each
// spends Azure quota) and depth. Linear in the document's size: each fragment is measured once and
// its figures reused at every spread, so a chain of fragments that each spread the next twice
// costs n steps, not 2^n. Expanded counts may still be huge (2^n): they are numbers, not walks.
import {
  Kind,
  type DocumentNode, type FragmentDefinitionNode, type OperationDefinitionNode, type SelectionSetNode
} from 'graphql'

export interface OperationCost {
  /** The operation's name, or null for an anonymous one. */
  name: string | null
  /** Fields the operation would resolve once every fragment is expanded (aliases count). */
  fields: number
  /** identifyVehicle fields among them. */
  identifications: number
  /** Nesting below the root fields, as graphql-depth-limit counts it: 0 for `{ vision }`, 1 for `{ vision { ready } }`. */
  depth: number
}

interface Figures { fields: number, identifications: number, depth: number }

const NONE: Figures = { fields: 0, identifications: 0, depth: 0 }

export function measureOperations (document: DocumentNode): OperationCost[] {
  const fragments = new Map<string, FragmentDefinitionNode>()
  const operations: OperationDefinitionNode[] = []
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition)
    else if (definition.kind === Kind.OPERATION_DEFINITION) operations.push(definition)
  }

  const measured = new Map<string, Figures>()
  const measuring = new Set<string>()

  function fragment (name: string): Figures {
    const known = measured.get(name)
    if (known) return known
    const definition = fragments.get(name)
    // Unknown or cyclic: graphql-js reports it; here it costs nothing more.
    if (definition === undefined || measuring.has(name)) return NONE
    measuring.add(name)
    const figures = selectionSet(definition.selectionSet)
    measuring.delete(name)
    measured.set(name, figures)
    return figures
  }

  function selectionSet (set: SelectionSetNode): Figures {
    let fields = 0
    let identifications = 0
    let depth = 0
    for (const selection of set.selections) {
      let inner: Figures
      if (selection.kind === Kind.FIELD) {
        inner = selection.selectionSet ? selectionSet(selection.selectionSet) : NONE
        fields += 1
        if (selection.name.value === 'identifyVehicle') identifications += 1
        depth = Math.max(depth, inner.depth) // this level is counted once, below
      } else {
        inner = selection.kind === Kind.INLINE_FRAGMENT ? selectionSet(selection.selectionSet) : fragment(selection.name.value)
        depth = Math.max(depth, inner.depth - 1) // a fragment's fields sit at this level
      }
      fields += inner.fields
      identifications += inner.identifications
    }
    return { fields, identifications, depth: depth + 1 }
  }

  return operations.map(operation => {
    const figures = selectionSet(operation.selectionSet)
    return { name: operation.name?.value ?? null, ...figures, depth: figures.depth - 1 }
  })
}
