// Azure OpenAI failures, after the SDK's own retries, as stable GraphQL error codes.
import { APIConnectionError, APIError, APIUserAbortError } from 'openai'
import {
  AppError, BadUserInputError, ClientClosedRequestError, ContentFilteredError, InternalServerError,
  UpstreamAuthError, UpstreamRateLimitedError, UpstreamTimeoutError, UpstreamUnavailableError
} from '../errors.ts'
import { redactTokens } from '../azure/token-provider.ts'

export const ROLE_HINT = 'Grant the service\'s managed identity the "Cognitive Services OpenAI User" role on the Azure OpenAI resource (Reader is not enough); role assignments take a few minutes to apply.'

export interface CallContext {
  deployment: string
  timeoutMs: number
  /** Which signal ended the call, if any. */
  timedOut: boolean
  clientGone: boolean
}

export function mapUpstreamError (err: unknown, ctx: CallContext): AppError {
  if (err instanceof AppError) return err // e.g. AUTH_UNAVAILABLE from the token provider
  if (ctx.timedOut) {
    return new UpstreamTimeoutError(`Azure OpenAI did not answer within ${ctx.timeoutMs} ms (retries included).`, { cause: err })
  }
  if (ctx.clientGone || err instanceof APIUserAbortError) {
    return new ClientClosedRequestError('The client went away; the upstream call was aborted.', { cause: err })
  }
  // The token provider's own failure reaches us wrapped by the SDK: unwrap it.
  const cause = (err as { cause?: unknown }).cause
  if (cause instanceof AppError) return cause

  if (err instanceof APIError && typeof err.status === 'number') {
    const status = err.status
    if (isContentFilter(err)) {
      return new ContentFilteredError('Azure OpenAI\'s content filter blocked this request. Try another photo or other instructions.', { cause: err })
    }
    if (status === 429) {
      const retryAfter = retryAfterSeconds(err.headers)
      return new UpstreamRateLimitedError('The Azure OpenAI deployment is rate limited; try again later.', { cause: err, retryAfterSeconds: retryAfter })
    }
    if (status === 401 || status === 403) {
      return new UpstreamAuthError(`Azure OpenAI refused the service's credentials (HTTP ${status}). ${ROLE_HINT}`, { cause: err })
    }
    if (status === 400 || status === 413 || status === 415 || status === 422) {
      // The request itself was refused: typically an image Azure cannot read. Its own words, cut short.
      const detail = typeof err.error === 'object' && err.error !== null ? String((err.error as { message?: unknown }).message ?? '') : ''
      return new BadUserInputError(`Azure OpenAI refused the request (HTTP ${status})${detail ? `: ${redactTokens(detail.slice(0, 200))}` : '.'}`, {}, { cause: err })
    }
    if (status === 404) {
      return new UpstreamUnavailableError(`Azure OpenAI has no deployment named "${ctx.deployment}" (HTTP 404).`, { cause: err })
    }
    if (status >= 500 || status === 408 || status === 409) {
      return new UpstreamUnavailableError(`Azure OpenAI is unavailable (HTTP ${status}); try again later.`, { cause: err })
    }
  }
  if (err instanceof APIConnectionError) {
    return new UpstreamUnavailableError('Azure OpenAI could not be reached; try again later.', { cause: err })
  }
  return new InternalServerError('Unexpected error while calling the vision model.', { cause: err })
}

function isContentFilter (err: APIError): boolean {
  if (err.code === 'content_filter') return true
  const body = err.error as { code?: unknown, innererror?: { code?: unknown } } | undefined
  return body?.code === 'content_filter' || body?.innererror?.code === 'ResponsibleAIPolicyViolation'
}

/** Milliseconds to wait, from `retry-after-ms` or `retry-after` (seconds or an HTTP date). */
export function retryAfterMs (headers: Headers | undefined, now = Date.now()): number | undefined {
  if (headers === undefined) return undefined
  const ms = Number(headers.get('retry-after-ms'))
  if (Number.isFinite(ms) && ms > 0) return ms
  const value = headers.get('retry-after')
  if (value === null) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** The same in whole seconds, rounded up, for `extensions.retryAfter`. */
export function retryAfterSeconds (headers: Headers | undefined, now = Date.now()): number | undefined {
  const ms = retryAfterMs(headers, now)
  return ms === undefined ? undefined : Math.ceil(ms / 1000)
}
