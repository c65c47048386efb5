// Text from outside (a model's answer, a receiver's reply, a caller's argument) is data: before it is
// stored it is made storable on both databases. PostgreSQL refuses U+0000 in text ("invalid byte sequence
// for encoding UTF8: 0x00") and both drivers turn an unpaired UTF-16 surrogate into something else on the
// way; so both become U+FFFD (the replacement character), visibly, rather than failing the write.
// One place applies it to every statement: StorableTextPlugin, on every Kysely instance history opens.
import {
  OperationNodeTransformer, PrimitiveValueListNode, ValueNode,
  type KyselyPlugin, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryResult, type RootOperationNode,
  type UnknownRow
} from 'kysely'

export const REPLACEMENT = '\uFFFD'

/** True when `text` can be stored as it is (no U+0000, no unpaired surrogate). */
export function isStorableText (text: string): boolean {
  return text.isWellFormed() && !text.includes('\0')
}

/** `text` with U+0000 and unpaired surrogates replaced by U+FFFD (the same string when there are none). */
export function storableText (text: string): string {
  if (isStorableText(text)) return text
  return text.toWellFormed().replaceAll('\0', REPLACEMENT)
}

/** A value as it will be bound: strings made storable, anything else (numbers, bytes, null) unchanged. */
function storableValue (value: unknown): unknown {
  return typeof value === 'string' ? storableText(value) : value
}

/** JSON.stringify's replacer for text columns holding JSON (vehicles, image facts): every string in it storable. */
export function storableJsonReplacer (_key: string, value: unknown): unknown {
  return storableValue(value)
}

class StorableTextTransformer extends OperationNodeTransformer {
  protected override transformValue (node: ValueNode): ValueNode {
    if (typeof node.value !== 'string' || isStorableText(node.value)) return node
    return node.immediate === true ? ValueNode.createImmediate(storableText(node.value)) : ValueNode.create(storableText(node.value))
  }

  protected override transformPrimitiveValueList (node: PrimitiveValueListNode): PrimitiveValueListNode {
    if (!node.values.some(value => typeof value === 'string' && !isStorableText(value))) return node
    return PrimitiveValueListNode.create(node.values.map(storableValue))
  }
}

/**
 * Every string bound to a statement (inserts, updates, and the arguments of selects, so that a lookup compares
 * what was stored) is made storable. Values only: the SQL text is ours.
 */
export class StorableTextPlugin implements KyselyPlugin {
  readonly #transformer = new StorableTextTransformer()

  transformQuery (args: PluginTransformQueryArgs): RootOperationNode {
    return this.#transformer.transformNode(args.node)
  }

  async transformResult (args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result
  }
}
