// The Azure OpenAI backend: the openai client with a Microsoft Entra ID bearer token, never a key, in front of
// one deployment or several (failover/): each request goes to the best backend that can take it and, when that
// one is throttled or failing, to the next at once, within the caller's VISION_TIMEOUT_MS.
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, AzureOpenAI } from 'openai'
import type { FastifyBaseLogger } from 'fastify'
import type { AzureClientOptions } from 'openai/azure'
import type { ChatCompletion } from 'openai/resources/chat/completions'
import type { AzureBackendConfig, AzureConfig } from '../azure/config.ts'
import {
  AppError, UpstreamInvalidResponseError, UpstreamRateLimitedError, UpstreamTimeoutError, UpstreamUnavailableError
} from '../errors.ts'
import type { CachedTokenProvider } from '../azure/token-provider.ts'
import { encodeChatRequest } from './chat-request.ts'
import { mapUpstreamError, retryAfterMs } from './upstream-errors.ts'
import { AnswerShapeError, parseAnswer } from './answer-schema.ts'
import { readCompletion, totalUsage } from './completion.ts'
import { BackendPool, type PoolBackend } from './failover/pool.ts'
import type {
  AttemptListener, AttemptOutcome, IdentifyRequest, IdentifyResult, TokenUsage, VisionService, VisionStatus
} from './types.ts'

export interface AzureVisionOptions {
  azure: AzureConfig
  tokens: CachedTokenProvider
  /** Whole call, retries and failover included (VISION_TIMEOUT_MS). */
  timeoutMs: number
  /** One backend's attempt (VISION_ATTEMPT_TIMEOUT_MS); default: timeoutMs with one backend, half of it with several. */
  attemptTimeoutMs?: number
  maxTokens: number
  /** SDK retries on one backend (408/409/429/5xx/connection errors); default 2 with one backend, 0 with several (failover retries). */
  maxRetries?: number
  /** Consecutive failures that open a backend's circuit breaker (VISION_BREAKER_FAILURES). */
  breakerFailures?: number
  /** How long an open breaker keeps requests away before one probe (VISION_BREAKER_COOLDOWN_MS). */
  breakerCoolDownMs?: number
  /** For oddities in Azure's answers (a malformed usage object) and failovers. */
  log?: FastifyBaseLogger
  now?: () => number
  random?: () => number
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

/** The HTTP call to one backend failed (as opposed to its answer being unusable): the error is the SDK's. */
class BackendCallError extends Error {
  readonly error: unknown
  constructor (error: unknown) {
    super('backend call failed', { cause: error })
    this.error = error
  }
}

export function createAzureVision (options: AzureVisionOptions): VisionService {
  const { azure, tokens, timeoutMs, maxTokens, log, now = Date.now } = options
  const several = azure.backends.length > 1
  const attemptTimeoutMs = Math.min(options.attemptTimeoutMs ?? (several ? Math.ceil(timeoutMs / 2) : timeoutMs), timeoutMs)
  const maxRetries = options.maxRetries ?? (several ? 0 : 2)
  const listeners: AttemptListener[] = []

  // A 429 holds its backend for its retry-after: new calls go elsewhere (or fail fast with UPSTREAM_RATE_LIMITED
  // when every backend is held) instead of hammering it. Seen on every attempt, the SDK's own retries included.
  const byName = new Map<string, PoolBackend<OpenAI>>()
  const watchRateLimits = (name: string): typeof globalThis.fetch => async (input, init) => {
    const response = await globalThis.fetch(input, init)
    if (response.status === 429) {
      const backend = byName.get(name)
      if (backend !== undefined) pool.hold(backend, retryAfterMs(response.headers))
    }
    return response
  }
  const pool = new BackendPool(
    azure.backends.map(config => ({ config, client: createAzureClient(config, tokens, maxRetries, watchRateLimits(config.name)) })),
    {
      breaker: { failureThreshold: options.breakerFailures ?? 3, coolDownMs: options.breakerCoolDownMs ?? 10_000 },
      now,
      ...(options.random ? { random: options.random } : {})
    })
  for (const backend of pool.backends) byName.set(backend.config.name, backend)

  function observe (backend: PoolBackend<OpenAI>, outcome: AttemptOutcome, startedAt: number): void {
    const attempt = { backend: backend.config.name, outcome, seconds: (performance.now() - startedAt) / 1000 }
    for (const listener of listeners) listener(attempt)
  }

  /**
   * The error when no backend (or no further backend) can take the request: UPSTREAM_RATE_LIMITED only when
   * every backend is held (retryAfter: the soonest hold's end), else the last failure that was not a 429.
   */
  function exhausted (last: AppError | undefined, lastThrottle: AppError | undefined): AppError {
    const { allHeld, soonestMs } = pool.unavailable()
    const retryAfter = Math.max(1, Math.ceil(soonestMs / 1000))
    // One deployment: its own 429 as it said it (retry-after uncapped, or 0).
    if (!several && lastThrottle !== undefined) return lastThrottle
    if (allHeld) {
      const which = several ? `Every Azure OpenAI deployment (${pool.backends.length}) is` : 'The Azure OpenAI deployment is'
      return new UpstreamRateLimitedError(`${which} rate limited: try again in ${retryAfter} s.`, { retryAfterSeconds: retryAfter })
    }
    if (last !== undefined) return last
    return new UpstreamUnavailableError(
      `No Azure OpenAI deployment can take the request now (rate limited or failing): try again in ${retryAfter} s.`,
      { retryAfterSeconds: retryAfter })
  }

  const soonest = (): string => `the soonest in ${Math.ceil(pool.unavailable().soonestMs / 1000)} s`

  return {
    backend: 'AZURE_OPENAI',

    async identify (request: IdentifyRequest): Promise<IdentifyResult> {
      const deadlineAt = now() + timeoutMs
      const deadline = AbortSignal.timeout(timeoutMs)
      const signal = AbortSignal.any([request.signal, deadline])
      // Encoded once per deployment name: a second attempt or backend with the same name sends the same bytes.
      const bodies = new Map<string, Buffer>()
      const tried = new Set<PoolBackend<OpenAI>>()
      let last: AppError | undefined
      let lastThrottle: AppError | undefined
      for (;;) {
        const remainingMs = deadlineAt - now()
        const backend = remainingMs > 0 ? pool.choose(tried) : null
        if (backend === null) {
          // Out of time: the last failure says why; out of backends: the pool's state does.
          const final = last ?? lastThrottle
          throw remainingMs <= 0 && final !== undefined ? final : exhausted(last, lastThrottle)
        }
        tried.add(backend)
        const { name, deployment } = backend.config
        let body = bodies.get(deployment)
        if (body === undefined) bodies.set(deployment, body = encodeChatRequest(deployment, request, maxTokens))
        const startedAt = performance.now()
        const attemptMs = Math.min(attemptTimeoutMs, remainingMs)
        try {
          const result = await askBackend(backend, body, signal, attemptMs)
          backend.breaker.success()
          observe(backend, 'ok', startedAt)
          return { ...result, backendName: name }
        } catch (err) {
          if (!(err instanceof BackendCallError)) {
            // The backend answered, with something the caller must hear (content filter, refusal, bad JSON twice):
            // never asked again elsewhere.
            backend.breaker.success()
            observe(backend, 'refused', startedAt)
            throw err
          }
          const mapped = mapUpstreamError(err.error, {
            deployment, timeoutMs, timedOut: deadline.aborted, clientGone: request.signal.aborted
          })
          const verdict = judge(err.error, mapped, request.signal, deadline)
          observe(backend, verdict.outcome, startedAt)
          if (verdict.outcome === 'rate_limited') {
            backend.breaker.release()
            pool.hold(backend, retryAfterMs(err.error instanceof APIError ? err.error.headers : undefined))
          } else if (verdict.outcome === 'error' || verdict.outcome === 'timeout') {
            backend.breaker.failure()
          } else {
            backend.breaker.release()
          }
          if (!verdict.tryNext) throw mapped
          if (verdict.outcome === 'rate_limited') {
            lastThrottle = mapped
            continue
          }
          last = verdict.outcome === 'timeout'
            ? new UpstreamTimeoutError(`Azure OpenAI (${several ? `backend ${name}` : deployment}) did not answer within ${attemptMs} ms.`, { cause: err.error })
            : mapped
          if (several) {
            const { state, consecutiveFailures } = backend.breaker
            log?.warn({ backend: name, code: mapped.code, breaker: state, consecutiveFailures }, 'an Azure OpenAI backend failed: trying the next one')
          }
        }
      }
    },

    status (): VisionStatus {
      const token = tokens.hasValidToken()
      if (!token) tokens.refreshIfStale()
      const available = pool.anyAvailable()
      const first = pool.backends[0]?.config.deployment ?? null
      // Open to anyone (/health/ready): say what, not the credential's own words (those go to the log).
      const reason = !token
        ? (tokens.lastError === undefined ? 'no access token acquired yet' : 'no access token: the last fetch failed (see the server log)')
        : (available ? undefined : `no Azure OpenAI deployment can take a request (rate limited or failing); ${soonest()}`)
      return { backend: 'AZURE_OPENAI', deployment: first, ready: token && available, ...(reason === undefined ? {} : { reason }) }
    },

    backends: () => pool.snapshot(),

    onAttempt (listener: AttemptListener): () => void {
      listeners.push(listener)
      return () => { listeners.splice(listeners.indexOf(listener) >>> 0, 1) }
    },

    tokenStats: () => ({ ...tokens.stats }),

    async warmUp (): Promise<void> {
      await tokens.warmUp()
    }
  }

  /**
   * One backend's answer: the HTTP call (failures thrown as BackendCallError), then its content. JSON that
   * does not parse or match the schema is asked for once more of the same backend, then UPSTREAM_INVALID_RESPONSE.
   */
  async function askBackend (
    backend: PoolBackend<OpenAI>, body: Buffer, signal: AbortSignal, attemptMs: number
  ): Promise<Omit<IdentifyResult, 'backendName'>> {
    const { deployment } = backend.config
    const usages: Array<TokenUsage | null> = []
    let problem: AnswerShapeError | undefined
    let lastFinishReason: string | undefined
    for (let attempt = 1; attempt <= MAX_ANSWER_ATTEMPTS; attempt++) {
      let completion: unknown
      let status: number
      try {
        // POST /chat/completions through the SDK (token, retries, errors, deployment routing), with a pre-encoded body.
        const { data, response } = await backend.client
          .post<ChatCompletion>('/chat/completions', { body, headers: { 'content-type': 'application/json' }, signal, timeout: attemptMs })
          .withResponse()
        completion = data
        status = response.status
      } catch (err) {
        throw new BackendCallError(err)
      }
      const read = readCompletion(completion, status, deployment, log)
      usages.push(read.usage)
      try {
        const { answer, vehicles } = parseAnswer(read.content)
        return { answer, vehicles, model: read.model, upstreamStatus: status, usage: totalUsage(usages) }
      } catch (err) {
        if (!(err instanceof AnswerShapeError)) throw err
        problem = err
        lastFinishReason = read.finishReason
        // Where and what, never the content.
        log?.warn({ backend: backend.config.name, deployment, attempt, at: err.at, problem: err.message, finishReason: read.finishReason },
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

/** How many times one identification asks the model for an answer of the right shape. */
const MAX_ANSWER_ATTEMPTS = 2

interface Verdict {
  outcome: AttemptOutcome
  /** Whether another backend may be asked. */
  tryNext: boolean
}

/**
 * What a failed call says about its backend, and whether the request may go to another one. Throttling,
 * server errors, connection failures and a timed-out attempt are the backend's: the next one is asked.
 * A refused request (400-class: bad input, content filter) would be refused anywhere: never retried.
 */
function judge (error: unknown, mapped: AppError, clientSignal: AbortSignal, deadline: AbortSignal): Verdict {
  if (clientSignal.aborted) return { outcome: 'aborted', tryNext: false }
  if (deadline.aborted) return { outcome: 'timeout', tryNext: false }
  // The token provider's failure (AUTH_UNAVAILABLE) is the same for every backend.
  if (mapped.code === 'AUTH_UNAVAILABLE') return { outcome: 'aborted', tryNext: false }
  if (error instanceof APIError && typeof error.status === 'number') {
    const status = error.status
    if (status === 429) return { outcome: 'rate_limited', tryNext: true }
    // 401/403: the identity may lack its role on this resource only; 404: no such deployment there.
    if (status >= 500 || [401, 403, 404, 408, 409].includes(status)) return { outcome: 'error', tryNext: true }
    return { outcome: 'refused', tryNext: false }
  }
  if (error instanceof APIConnectionError) {
    // APIConnectionTimeoutError is one: the attempt's own timeout, with time left for another backend.
    return { outcome: error instanceof APIConnectionTimeoutError ? 'timeout' : 'error', tryNext: true }
  }
  return { outcome: 'error', tryNext: false }
}
