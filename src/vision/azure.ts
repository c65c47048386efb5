// The Azure OpenAI backend: the openai client with a Microsoft Entra ID bearer token, never a key.
import OpenAI, { AzureOpenAI } from 'openai'
import type { FastifyBaseLogger } from 'fastify'
import type { AzureClientOptions } from 'openai/azure'
import type { ChatCompletion } from 'openai/resources/chat/completions'
import type { AzureConfig } from '../azure/config.ts'
import {
  ContentFilteredError, ModelRefusedError, UpstreamInvalidResponseError, UpstreamRateLimitedError, UpstreamUnavailableError
} from '../errors.ts'
import type { CachedTokenProvider } from '../azure/token-provider.ts'
import { encodeChatRequest } from './chat-request.ts'
import { mapUpstreamError, retryAfterMs } from './upstream-errors.ts'
import { AnswerShapeError, parseAnswer } from './answer-schema.ts'
import type { IdentifyRequest, IdentifyResult, TokenUsage, VisionService, VisionStatus } from './types.ts'

export interface AzureVisionOptions {
  azure: AzureConfig
  tokens: CachedTokenProvider
  /** Whole call, retries included (VISION_TIMEOUT_MS). */
  timeoutMs: number
  maxTokens: number
  /** SDK retries on 408/409/429/5xx/connection errors (default 2). */
  maxRetries?: number
  /** For oddities in Azure's answers (a malformed usage object). */
  log?: FastifyBaseLogger
}

/** The client for the configured API version: the v1 API with the plain client, dated versions with AzureOpenAI. */
export function createAzureClient (
  azure: AzureConfig, tokens: CachedTokenProvider, maxRetries: number, fetch: typeof globalThis.fetch = globalThis.fetch
): OpenAI {
  if (azure.apiVersion === 'v1') {
    // The provider function itself, not an awaited string: the SDK calls it on every attempt.
    return new OpenAI({ baseURL: `${azure.endpoint}/openai/v1/`, apiKey: tokens.getToken, maxRetries, fetch })
  }
  const options: AzureClientOptions = {
    // baseURL rather than endpoint, so an OPENAI_BASE_URL in the environment cannot conflict.
    baseURL: `${azure.endpoint}/openai`,
    deployment: azure.deployment,
    apiVersion: azure.apiVersion,
    azureADTokenProvider: tokens.getToken,
    maxRetries,
    fetch
  }
  // An explicit null: left undefined, apiKey defaults to AZURE_OPENAI_API_KEY from the environment and
  // the constructor throws "mutually exclusive". A key is never used. (The typings do not admit null.)
  Object.assign(options, { apiKey: null })
  return new AzureOpenAI(options)
}

export function createAzureVision (options: AzureVisionOptions): VisionService {
  const { azure, tokens, timeoutMs, maxTokens, log } = options
  // When Azure answers 429 with a retry-after, new calls to this deployment wait it out (fail fast
  // with UPSTREAM_RATE_LIMITED) instead of every request hammering it. Seen on every attempt, retries included.
  let coolDownUntil = 0
  const watchRateLimits: typeof globalThis.fetch = async (input, init) => {
    const response = await globalThis.fetch(input, init)
    if (response.status === 429) {
      const ms = retryAfterMs(response.headers)
      // Capped at a minute, like the SDK's own retry wait: a bogus retry-after must not stop the service for hours.
      if (ms !== undefined && ms > 0) coolDownUntil = Math.max(coolDownUntil, Date.now() + Math.min(ms, 60_000))
    }
    return response
  }
  const client = createAzureClient(azure, tokens, options.maxRetries ?? 2, watchRateLimits)

  return {
    backend: 'AZURE_OPENAI',

    async identify (request: IdentifyRequest): Promise<IdentifyResult> {
      const coolingMs = coolDownUntil - Date.now()
      if (coolingMs > 0) {
        const retryAfter = Math.ceil(coolingMs / 1000)
        throw new UpstreamRateLimitedError(`The Azure OpenAI deployment asked to wait: try again in ${retryAfter} s.`, { retryAfterSeconds: retryAfter })
      }
      const deadline = AbortSignal.timeout(timeoutMs)
      const signal = AbortSignal.any([request.signal, deadline])
      // Encoded once: a second attempt sends the same bytes.
      const body = encodeChatRequest(azure.deployment, request, maxTokens)
      const usages: Array<TokenUsage | null> = []
      let problem: AnswerShapeError | undefined
      let lastFinishReason: string | undefined
      // JSON that does not parse or match the schema is asked for once more, then UPSTREAM_INVALID_RESPONSE.
      for (let attempt = 1; attempt <= MAX_ANSWER_ATTEMPTS; attempt++) {
        let completion: unknown
        let status: number
        try {
          // POST /chat/completions through the SDK (token, retries, errors, deployment routing), with a pre-encoded body.
          const { data, response } = await client
            .post<ChatCompletion>('/chat/completions', { body, headers: { 'content-type': 'application/json' }, signal, timeout: timeoutMs })
            .withResponse()
          completion = data
          status = response.status
        } catch (err) {
          throw mapUpstreamError(err, {
            deployment: azure.deployment,
            timeoutMs,
            timedOut: deadline.aborted,
            clientGone: request.signal.aborted
          })
        }
        const read = readCompletion(completion, status, azure.deployment, log)
        usages.push(read.usage)
        try {
          const { answer, vehicles } = parseAnswer(read.content)
          return { answer, vehicles, model: read.model, upstreamStatus: status, usage: totalUsage(usages) }
        } catch (err) {
          if (!(err instanceof AnswerShapeError)) throw err
          problem = err
          lastFinishReason = read.finishReason
          // Where and what, never the content.
          log?.warn({ deployment: azure.deployment, attempt, at: err.at, problem: err.message, finishReason: read.finishReason },
            attempt < MAX_ANSWER_ATTEMPTS
              ? 'Azure OpenAI\'s answer does not match the structured output schema: asking once more'
              : 'Azure OpenAI\'s answer does not match the structured output schema again: giving up')
        }
      }
      const cutOff = lastFinishReason === 'length' ? ', cut off at VISION_MAX_TOKENS' : ''
      throw new UpstreamInvalidResponseError(
        `Azure OpenAI answered ${MAX_ANSWER_ATTEMPTS} times without JSON of the requested shape (last: ${problem?.message ?? 'unknown'}${cutOff}); try again.`,
        { cause: problem })
    },

    status (): VisionStatus {
      const ready = tokens.hasValidToken()
      if (!ready) tokens.refreshIfStale()
      return {
        backend: 'AZURE_OPENAI',
        deployment: azure.deployment,
        ready,
        // Open to anyone (/health/ready): say what, not the credential's own words (those go to the log).
        ...(ready ? {} : { reason: tokens.lastError === undefined ? 'no access token acquired yet' : 'no access token: the last fetch failed (see the server log)' })
      }
    },

    tokenStats: () => ({ ...tokens.stats }),

    async warmUp (): Promise<void> {
      await tokens.warmUp()
    }
  }
}

/** How many times one identification asks the model for an answer of the right shape. */
const MAX_ANSWER_ATTEMPTS = 2

interface ReadCompletion {
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
function readCompletion (completion: unknown, status: number, deployment: string, log: FastifyBaseLogger | undefined): ReadCompletion {
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
function totalUsage (usages: Array<TokenUsage | null>): TokenUsage | null {
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
