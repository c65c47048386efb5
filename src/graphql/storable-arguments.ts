// Every string argument of a request, written in the document or passed as a variable, is checked once
// before it runs: text holding U+0000 or an unpaired surrogate is refused as 400 BAD_USER_INPUT, whatever
// the field (history ids, filters, cursors, webhook URLs and descriptions, instructions). Such text has no
// honest use, PostgreSQL cannot compare or store it, and a lookup must not fail as STORAGE_UNAVAILABLE for it.
import { Kind, type DocumentNode, type ValueNode } from 'graphql'
import { BadUserInputError } from '../errors.ts'
import { isStorableText } from '../storable-text.ts'

export class UnstorableArgumentError extends BadUserInputError {
  /** The request's fault, before anything runs: HTTP 400. */
  override readonly statusCode = 400

  constructor (argument: string) {
    super(`\`${argument}\` holds U+0000 or an unpaired UTF-16 surrogate, which no field accepts: remove it.`,
      { argument, reason: 'unstorable_text' })
  }
}

/**
 * Documents whose written arguments were checked and found storable: mercurius hands the same DocumentNode for the
 * same query string (its cache), so a document's literals are walked once, not on every request (~1 % of the main
 * thread per identification); the variables, which differ per request, are checked every time. Keyed weakly: a
 * document mercurius evicts from its cache is collected with its entry.
 */
export type CheckedDocuments = WeakSet<DocumentNode>

export function checkStorableArguments (
  document: DocumentNode, variables: Record<string, unknown> | null | undefined, checked?: CheckedDocuments
): void {
  if (checked === undefined || !checked.has(document)) {
    checkDocumentArguments(document)
    checked?.add(document)
  }
  if (variables != null) checkValue(variables, '')
}

function checkDocumentArguments (document: DocumentNode): void {
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION && definition.kind !== Kind.FRAGMENT_DEFINITION) continue
    // Arguments of fields and directives anywhere in the selection (iteratively: documents are bounded, but not shallow).
    const nodes: unknown[] = [definition]
    while (nodes.length > 0) {
      const node = nodes.pop() as Record<string, unknown> | null
      if (node === null || typeof node !== 'object') continue
      if (node.kind === Kind.ARGUMENT) {
        const argument = node as unknown as { name: { value: string }, value: ValueNode }
        checkLiteral(argument.name.value, argument.value)
        continue
      }
      if (node.kind === Kind.VARIABLE_DEFINITION) { // a default value is an argument's value when no variable is sent
        const variable = node as unknown as { variable: { name: { value: string } }, defaultValue?: ValueNode }
        if (variable.defaultValue !== undefined) checkLiteral(`$${variable.variable.name.value}`, variable.defaultValue)
        continue
      }
      for (const key of ['variableDefinitions', 'selectionSet', 'selections', 'arguments', 'directives'] as const) {
        const child = node[key]
        if (Array.isArray(child)) nodes.push(...child)
        else if (child !== undefined) nodes.push(child)
      }
    }
  }
}

function checkLiteral (argument: string, value: ValueNode): void {
  const values: ValueNode[] = [value]
  while (values.length > 0) {
    const next = values.pop()!
    if (next.kind === Kind.STRING && !isStorableText(next.value)) throw new UnstorableArgumentError(argument)
    if (next.kind === Kind.LIST) values.push(...next.values)
    if (next.kind === Kind.OBJECT) values.push(...next.fields.map(field => field.value))
  }
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/** A list or input object still to look into, and where it sits (its path is spelt out only for an error). */
interface Pending { value: object, parent: Pending | null, step: string | number | null }

/**
 * Variables' values: strings, and the strings in lists and input objects (keys included), however deep.
 * Iterative; no path string is built unless one is refused (this runs on every request).
 */
function checkValue (root: unknown, rootPath: string): void {
  const pathOf = (at: Pending | null, step: string | number | null): string => {
    const steps: Array<string | number> = step === null ? [] : [step]
    for (let node = at; node !== null; node = node.parent) if (node.step !== null) steps.push(node.step)
    let path = rootPath
    for (const next of steps.reverse()) path = typeof next === 'number' ? `${path}[${next}]` : path === '' ? `$${next}` : `${path}.${next}`
    return path
  }
  const visit = (value: unknown, parent: Pending | null, step: string | number | null, pending: Pending[]): void => {
    if (typeof value === 'string') {
      if (!isStorableText(value)) throw new UnstorableArgumentError(pathOf(parent, step))
    } else if (Array.isArray(value) || isPlainObject(value)) { // parsed JSON; not an upload, a stream or bytes
      pending.push({ value, parent, step })
    }
  }
  const pending: Pending[] = []
  visit(root, null, null, pending)
  while (pending.length > 0) {
    const next = pending.pop()!
    const { value } = next
    if (Array.isArray(value)) {
      for (let index = 0; index < value.length; index++) visit(value[index], next, index, pending)
    } else {
      for (const key of Object.keys(value)) {
        if (!isStorableText(key)) {
          const path = pathOf(next, null)
          throw new UnstorableArgumentError(path === '' ? 'variables' : path)
        }
        visit((value as Record<string, unknown>)[key], next, key, pending)
      }
    }
  }
}
