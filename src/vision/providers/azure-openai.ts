// Azure OpenAI deployments as providers: the openai client with a Microsoft Entra ID bearer token, never a key.
// One provider per deployment (AZURE_OPENAI_BACKENDS), all sharing one credential and one cached token.
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, AzureOpenAI } from 'openai'
import type { FastifyBaseLogger } from 'fastify'
import type { AzureClientOptions } from 'openai/azure'
import type { ChatCompletion } from 'openai/resources/chat/completions'
import type { AzureBackendConfig } from '../../azure/config.ts'
import type { CachedTokenProvider } from '../../azure/token-provider.ts'
import { AppError, UpstreamInvalidResponseError, UpstreamTimeoutError } from '../../errors.ts'
import { encodeChatRequest } from '../chat-request.ts'
import { bufferBodyFetch } from '../buffer-body-fetch.ts'
import { mapUpstreamError, retryAfterMs } from '../upstream-errors.ts'
import { AnswerShapeError, parseAnswer } from '../answer-schema.ts'
import { readCompletion, totalUsage } from '../completion.ts'
import type { Attempt, Classification, ClassifyContext, VisionProvider } from '../provider.ts'
import type { IdentifyRequest, IdentifyResult, TokenUsage, VisionBackend } from '../types.ts'

export const AZURE_OPENAI = 'AZURE_OPENAI' satisfies VisionBackend

export interface AzureProvidersOptions {
  backends: readonly AzureBackendConfig[]
  tokens: CachedTokenProvider
  maxTokens: number
  /** SDK retries on one deployment (408/409/429/5xx/connection errors); default 2 alone, 0 with several (the failover retries). */
  maxRetries?: number
  /** For oddities in Azure's answers (a malformed usage object). */
  log?: FastifyBaseLogger
}

/** The client for a backend's API version: the v1 API with the plain client, dated versions with AzureOpenAI. */
export function createAzureClient (
  backend: Pick<AzureBackendConfig, 'endpoint' | 'deployment' | 'apiVersion'>, tokens: CachedTokenProvider, maxRetries: number,
  fetch: typeof globalThis.fetch = globalThis.fetch
): OpenAI {
  if (backend.apiVersion === 'v1') {
    // The provider function itself, not an awaited string: the SDK calls it on every attempt.
    return new OpenAI({ baseURL: `${backend.endpoint}/openai/v1/`, apiKey: tokens.getToken, maxRetries, fetch })
  }
  const options: AzureClientOptions = {
    // baseURL rather than endpoint, so an OPENAI_BASE_URL in the environment cannot conflict.
    baseURL: `${backend.endpoint}/openai`,
    deployment: backend.deployment,
    apiVersion: backend.apiVersion,
    azureADTokenProvider: tokens.getToken,
    maxRetries,
    fetch
  }
  // An explicit null: left undefined, apiKey defaults to AZURE_OPENAI_API_KEY from the environment and
  // the constructor throws "mutually exclusive". A key is never used. (The typings do not admit null.)
  Object.assign(options, { apiKey: null })
  return new AzureOpenAI(options)
}

/** The HTTP call to one deployment failed (as opposed to its answer being unusable): the error is the SDK's. */
class BackendCallError extends Error {
  readonly error: unknown
  constructor (error: unknown) {
    super('backend call failed', { cause: error })
    this.error = error
  }
}

/** How many times one identification asks the model for an answer of the right shape. */
const MAX_ANSWER_ATTEMPTS = 2

export function createAzureProviders (options: AzureProvidersOptions): VisionProvider[] {
  const { backends, tokens, maxTokens, log } = options
  const maxRetries = options.maxRetries ?? (backends.length > 1 ? 0 : 2)
  // Encoded once per deployment name and request: a second attempt or deployment with the same name sends the same bytes.
  const bodies = new WeakMap<IdentifyRequest, Map<string, Buffer>>()
  const encoded = (request: IdentifyRequest, deployment: string): Buffer => {
    let byDeployment = bodies.get(request)
    if (byDeployment === undefined) bodies.set(request, byDeployment = new Map())
    let body = byDeployment.get(deployment)
    if (body === undefined) byDeployment.set(deployment, body = encodeChatRequest(deployment, request, maxTokens))
    return body
  }
  // Shared by every deployment (one token): called once by the failover.
  const warmUp = async (): Promise<void> => { await tokens.warmUp() }
  const status = (): { ready: boolean, reason?: string } => {
    if (tokens.hasValidToken()) return { ready: true }
    tokens.refreshIfStale()
    // Open to anyone (/health/ready): say what, not the credential's own words (those go to the log).
    return { ready: false, reason: tokens.lastError === undefined ? 'no access token acquired yet' : 'no access token: the last fetch failed (see the server log)' }
  }
  const sendFetch = bufferBodyFetch()
  return backends.map(config => createAzureProvider(config))

  function createAzureProvider (config: AzureBackendConfig): VisionProvider {
    const { name, deployment, endpoint, priority, weight } = config
    // A 429 holds its deployment for its retry-after: new calls go elsewhere (or fail fast with UPSTREAM_RATE_LIMITED
    // when every deployment is held) instead of hammering it. Seen on every attempt, the SDK's own retries included.
    let hold: Attempt['hold'] = () => {}
    const watchRateLimits: typeof globalThis.fetch = async (input, init) => {
      const response = await sendFetch(input, init)
      if (response.status === 429) hold(retryAfterMs(response.headers))
      return response
    }
    const client = createAzureClient(config, tokens, maxRetries, watchRateLimits)
    return {
      kind: AZURE_OPENAI,
      name,
      deployment,
      priority,
      weight,
      async identify (request, attempt) {
        hold = attempt.hold // the same pool entry for every attempt on this deployment
        return await askBackend(request, attempt)
      },
      classify: (error, context) => classify(error, deployment, name, context),
      status,
      cacheIdentity: () => `${endpoint}/${deployment}`,
      warmUp
    }

    /**
     * One deployment's answer: the HTTP call (failures thrown as BackendCallError), then its content. JSON that
     * does not parse or match the schema is asked for once more of the same deployment, then UPSTREAM_INVALID_RESPONSE.
     */
    async function askBackend (request: IdentifyRequest, { signal, timeoutMs }: Attempt): Promise<Omit<IdentifyResult, 'backendName'>> {
      const body = encoded(request, deployment)
      const usages: Array<TokenUsage | null> = []
      let problem: AnswerShapeError | undefined
      let lastFinishReason: string | undefined
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
          throw new BackendCallError(err)
        }
        const read = readCompletion(completion, status, deployment, log)
        usages.push(read.usage)
        try {
          const { answer, vehicles, imageQuality } = parseAnswer(read.content)
          return { answer, vehicles, imageQuality, model: read.model, upstreamStatus: status, usage: totalUsage(usages) }
        } catch (err) {
          if (!(err instanceof AnswerShapeError)) throw err
          problem = err
          lastFinishReason = read.finishReason
          // Where and what, never the content.
          log?.warn({ backend: name, deployment, attempt, at: err.at, problem: err.message, finishReason: read.finishReason },
            attempt < MAX_ANSWER_ATTEMPTS
              ? 'Azure OpenAI\'s answer does not match the structured output schema: asking once more'
              : 'Azure OpenAI\'s answer does not match the structured output schema again: giving up')
        }
      }
      const cutOff = lastFinishReason === 'length' ? ', cut off at VISION_MAX_TOKENS' : ''
      throw new UpstreamInvalidResponseError(
        `Azure OpenAI answered ${MAX_ANSWER_ATTEMPTS} times without JSON of the requested shape (last: ${problem?.message ?? 'unknown'}${cutOff}); try again.`,
        { cause: problem })
    }
  }
}

/**
 * What a failure says about its deployment, and whether the request may go to another one. Throttling,
 * server errors, connection failures and a timed-out attempt are the deployment's: the next one is asked.
 * A refused request (400-class: bad input, content filter) would be refused anywhere: never retried.
 */
function classify (error: unknown, deployment: string, name: string, context: ClassifyContext): Classification {
  if (!(error instanceof BackendCallError)) {
    // The deployment answered, with something the caller must hear (content filter, refusal, bad JSON twice).
    return { outcome: 'refused', tryNext: false, error, answered: true }
  }
  const { timedOut, clientGone, timeoutMs, attemptMs, alone } = context
  const mapped = mapUpstreamError(error.error, { deployment, timeoutMs, timedOut, clientGone })
  const { outcome, tryNext } = judge(error.error, mapped, clientGone, timedOut)
  if (outcome === 'rate_limited') {
    const retryAfter = retryAfterMs(error.error instanceof APIError ? error.error.headers : undefined)
    return { outcome, tryNext, error: mapped, ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }) }
  }
  if (outcome === 'timeout' && tryNext) {
    const which = alone ? deployment : `backend ${name}`
    return { outcome, tryNext, error: new UpstreamTimeoutError(`Azure OpenAI (${which}) did not answer within ${attemptMs} ms.`, { cause: error.error }) }
  }
  return { outcome, tryNext, error: mapped }
}

function judge (error: unknown, mapped: AppError, clientGone: boolean, timedOut: boolean): Pick<Classification, 'outcome' | 'tryNext'> {
  if (clientGone) return { outcome: 'aborted', tryNext: false }
  if (timedOut) return { outcome: 'timeout', tryNext: false }
  // The token provider's failure (AUTH_UNAVAILABLE) is the same for every deployment.
  if (mapped.code === 'AUTH_UNAVAILABLE') return { outcome: 'aborted', tryNext: false }
  if (error instanceof APIError && typeof error.status === 'number') {
    const status = error.status
    if (status === 429) return { outcome: 'rate_limited', tryNext: true }
    // 401/403: the identity may lack its role on this resource only; 404: no such deployment there.
    if (status >= 500 || [401, 403, 404, 408, 409].includes(status)) return { outcome: 'error', tryNext: true }
    return { outcome: 'refused', tryNext: false }
  }
  if (error instanceof APIConnectionError) {
    // APIConnectionTimeoutError is one: the attempt's own timeout, with time left for another deployment.
    return { outcome: error instanceof APIConnectionTimeoutError ? 'timeout' : 'error', tryNext: true }
  }
  return { outcome: 'error', tryNext: false }
}
