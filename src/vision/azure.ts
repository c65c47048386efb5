// The Azure OpenAI backend: the openai client with a Microsoft Entra ID bearer token, never a key.
import OpenAI, { AzureOpenAI } from 'openai'
import type { AzureClientOptions } from 'openai/azure'
import type { ChatCompletion } from 'openai/resources/chat/completions'
import type { AzureConfig } from '../config.ts'
import { AppError } from '../errors.ts'
import type { CachedTokenProvider } from '../auth/token-provider.ts'
import { encodeChatRequest } from './chat-request.ts'
import { mapUpstreamError, retryAfterMs } from './upstream-errors.ts'
import type { IdentifyRequest, IdentifyResult, VisionService, VisionStatus } from './types.ts'

export interface AzureVisionOptions {
  azure: AzureConfig
  tokens: CachedTokenProvider
  /** Whole call, retries included (VISION_TIMEOUT_MS). */
  timeoutMs: number
  maxTokens: number
  /** SDK retries on 408/409/429/5xx/connection errors (default 2). */
  maxRetries?: number
}

/** The client for the configured API version: the v1 API with the plain client, dated versions with AzureOpenAI. */
export function createAzureClient (azure: AzureConfig, tokens: CachedTokenProvider, maxRetries: number, fetch: typeof globalThis.fetch = globalThis.fetch): OpenAI {
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
  const { azure, tokens, timeoutMs, maxTokens } = options
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
        throw new AppError('UPSTREAM_RATE_LIMITED', `The Azure OpenAI deployment asked to wait: try again in ${retryAfter} s.`, { extensions: { retryAfter } })
      }
      const deadline = AbortSignal.timeout(timeoutMs)
      const signal = AbortSignal.any([request.signal, deadline])
      let completion: ChatCompletion
      let status: number
      try {
        // POST /chat/completions through the SDK (token, retries, errors, deployment routing), with a pre-encoded body.
        const { data, response } = await client
          .post<ChatCompletion>('/chat/completions', {
            body: encodeChatRequest(azure.deployment, request, maxTokens),
            headers: { 'content-type': 'application/json' },
            signal,
            timeout: timeoutMs
          })
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
      return readCompletion(completion, status, azure.deployment)
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

function readCompletion (completion: ChatCompletion, status: number, deployment: string): IdentifyResult {
  const choice = completion.choices[0]
  if (choice?.finish_reason === 'content_filter') {
    throw new AppError('CONTENT_FILTERED', 'Azure OpenAI\'s content filter withheld the answer. Try another photo or other instructions.')
  }
  const answer = choice?.message.content
  if (typeof answer !== 'string' || answer.length === 0) {
    throw new AppError('UPSTREAM_UNAVAILABLE', 'Azure OpenAI returned no answer.')
  }
  const usage = completion.usage
  return {
    answer,
    model: completion.model || deployment,
    upstreamStatus: status,
    usage: usage
      ? { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, totalTokens: usage.total_tokens }
      : null
  }
}
