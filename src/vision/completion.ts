// Reading Azure's chat completion, which is not trusted to match the SDK's types: the answer is what the
// caller paid for, so malformed metadata (usage, model) never costs it.
import type { FastifyBaseLogger } from 'fastify'
import { ContentFilteredError, ModelRefusedError, UpstreamUnavailableError } from '../errors.ts'
import type { TokenUsage } from './types.ts'

export interface ReadCompletion {
  /** The message content: JSON, if the model kept to the schema. */
  content: string
  model: string
  usage: TokenUsage | null
  finishReason: string | undefined
}

/**
 * The answer out of Azure's JSON, which is not trusted to match the SDK's types: the answer is what the
 * caller paid for, so malformed metadata (usage, model) never costs it. A malformed usage becomes null
 * and is logged at warn, once per response, by its shape only (no values).
 */
export function readCompletion (
  completion: unknown, status: number, deployment: string, log: FastifyBaseLogger | undefined
): ReadCompletion {
  const body = isRecord(completion) ? completion : {}
  const choice = Array.isArray(body.choices) && isRecord(body.choices[0]) ? body.choices[0] : undefined
  if (choice?.finish_reason === 'content_filter') {
    throw new ContentFilteredError('Azure OpenAI\'s content filter withheld the answer. Try another photo or other instructions.')
  }
  const message = isRecord(choice?.message) ? choice.message : {}
  if (typeof message.refusal === 'string' && message.refusal !== '') {
    throw new ModelRefusedError('The model declined to answer about this photo (see extensions.refusal). Try another photo or other instructions.',
      message.refusal.slice(0, 1000))
  }
  const content = message.content
  if (typeof content !== 'string' || content.length === 0) {
    throw new UpstreamUnavailableError('Azure OpenAI returned no answer.')
  }
  const usage = readUsage(body.usage)
  if (usage === null) {
    log?.warn({ deployment, upstreamStatus: status, usage: shapeOf(body.usage) },
      'Azure OpenAI returned a malformed usage object (or none): the answer is kept, its token usage is unknown')
  }
  return {
    content,
    model: typeof body.model === 'string' && body.model !== '' ? body.model.slice(0, 200) : deployment,
    usage,
    finishReason: typeof choice?.finish_reason === 'string' ? choice.finish_reason.slice(0, 40) : undefined
  }
}

/** Every call's tokens (two when the first answer was asked again); unknown if any call's usage is. */
export function totalUsage (usages: Array<TokenUsage | null>): TokenUsage | null {
  let total: TokenUsage = { promptTokens: 0, completionTokens: 0, totalTokens: 0 }
  for (const usage of usages) {
    if (usage === null) return null
    total = {
      promptTokens: total.promptTokens + usage.promptTokens,
      completionTokens: total.completionTokens + usage.completionTokens,
      totalTokens: total.totalTokens + usage.totalTokens
    }
  }
  return isCount(total.totalTokens) && isCount(total.promptTokens) && isCount(total.completionTokens) ? total : null
}

/** GraphQL's Int is 32-bit signed. */
const MAX_INT = 2 ** 31 - 1
const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= MAX_INT

function readUsage (usage: unknown): TokenUsage | null {
  if (!isRecord(usage)) return null
  const { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total } = usage
  if (!isCount(prompt) || !isCount(completion) || !isCount(total)) return null
  return { promptTokens: prompt, completionTokens: completion, totalTokens: total }
}

/** What a value looks like, for the log: types and the first few (sanitized) key names, never a value. */
function shapeOf (value: unknown): Record<string, unknown> {
  if (value === undefined) return { type: 'missing' }
  if (value === null) return { type: 'null' }
  if (Array.isArray(value)) return { type: 'array', length: value.length }
  if (!isRecord(value)) return { type: typeof value }
  const fields: Record<string, string> = {}
  for (const name of ['prompt_tokens', 'completion_tokens', 'total_tokens']) fields[name] = kindOf(value[name])
  const others = Object.keys(value).filter(key => !(key in fields))
  return {
    type: 'object',
    fields,
    ...(others.length > 0 ? { otherKeys: others.slice(0, 5).map(key => /^[\w.-]{1,40}$/.test(key) ? key : '(unprintable)'), otherKeyCount: others.length } : {})
  }
}

function kindOf (value: unknown): string {
  if (value === undefined) return 'missing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value !== 'number') return typeof value
  if (!Number.isFinite(value)) return 'non-finite number'
  if (!Number.isInteger(value)) return 'fraction'
  if (value < 0) return 'negative integer'
  return value > MAX_INT ? 'integer too large' : 'integer'
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
