// Every error the service refuses or fails with on purpose, one small class per kind (as undici's
// lib/core/errors.js): a fixed `code` (it becomes `extensions.code`), a fixed HTTP status, and typed
// fields. Families by inheritance: `UpstreamError` is whatever failed because Azure (or the identity
// endpoint in front of it) did. src/graphql/errors.ts turns any of them into status, headers and
// `extensions`, in one place. Messages never carry secrets, tokens or image bytes.

// The codes are the SDL's `enum ErrorCode` (src/graphql/kernel.graphql): each class's `code` must be one of
// them, so tsc keeps the classes, the schema and the field app (generated from the same SDL) in step.
import type { ErrorCode } from './generated/schema-enums.ts'

export type { ErrorCode }

export interface ErrorOptions {
  cause?: unknown
}

/** `extensions` of a GraphQL error: the code, then the kind's own fields. */
export type Extensions = { code: ErrorCode } & Record<string, unknown>

export abstract class AppError extends Error {
  abstract readonly code: ErrorCode
  /**
   * The HTTP status when the error ends the request (before GraphQL runs, or as the request's only
   * error); 200 for a field's error in an otherwise well-formed GraphQL response.
   */
  readonly statusCode: number = 200

  constructor (message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
  }

  /** What the client reads besides `code`: typed fields of the kind, never secrets. */
  details (): Record<string, unknown> {
    return {}
  }

  get extensions (): Extensions {
    return { code: this.code, ...this.details() }
  }
}

/** A kind that tells the client when to try again: `extensions.retryAfter` and, on 429/503, `Retry-After`. */
export abstract class RetryableError extends AppError {
  readonly retryAfterSeconds: number | undefined

  constructor (message: string, retryAfterSeconds: number | undefined, options: ErrorOptions = {}) {
    super(message, options)
    this.retryAfterSeconds = retryAfterSeconds
  }

  override details (): Record<string, unknown> {
    return this.retryAfterSeconds === undefined ? {} : { retryAfter: this.retryAfterSeconds }
  }
}

// The request itself

export class BadRequestError extends AppError {
  readonly code = 'BAD_REQUEST'
  override readonly statusCode = 400
}

export class MethodNotAllowedError extends AppError {
  readonly code = 'BAD_REQUEST'
  override readonly statusCode = 405
  /** The methods that would be accepted: the `Allow` header. */
  readonly allow: readonly string[]

  constructor (message: string, allow: readonly string[]) {
    super(message)
    this.allow = allow
  }
}

export class PayloadTooLargeError extends AppError {
  readonly code = 'PAYLOAD_TOO_LARGE'
  override readonly statusCode = 413
  readonly maxBytes: number

  constructor (message: string, maxBytes: number) {
    super(message)
    this.maxBytes = maxBytes
  }

  override details (): Record<string, unknown> { return { maxBytes: this.maxBytes } }
}

export class UploadTimeoutError extends AppError {
  readonly code = 'UPLOAD_TIMEOUT'
  override readonly statusCode = 408
  readonly idleTimeoutMs: number

  constructor (idleTimeoutMs: number) {
    super(`The upload made no progress for ${idleTimeoutMs} ms and was refused. Send it again.`)
    this.idleTimeoutMs = idleTimeoutMs
  }

  override details (): Record<string, unknown> { return { idleTimeoutMs: this.idleTimeoutMs } }
}

/** A drip: the body arrives, but slower on average than UPLOAD_MIN_BYTES_PER_SECOND. */
export class UploadTooSlowError extends AppError {
  readonly code = 'UPLOAD_TIMEOUT'
  override readonly statusCode = 408
  readonly minBytesPerSecond: number

  constructor (minBytesPerSecond: number, receivedBytes: number, elapsedMs: number) {
    super(`The upload arrived at ${Math.round(receivedBytes * 1000 / Math.max(1, elapsedMs))} bytes/s on average, slower than the ` +
      `minimum of ${minBytesPerSecond} bytes/s, and was refused. Send it again on a better connection.`)
    this.minBytesPerSecond = minBytesPerSecond
  }

  override details (): Record<string, unknown> { return { minBytesPerSecond: this.minBytesPerSecond } }
}

export class QueryRejectedError extends AppError {
  readonly code = 'GRAPHQL_VALIDATION_FAILED'
  override readonly statusCode = 400
}

export class ClientClosedRequestError extends AppError {
  readonly code = 'CLIENT_CLOSED_REQUEST'
  /** nginx's status for it: nobody reads it, logs and metrics do. */
  override readonly statusCode = 499
}

/** What the caller sent cannot be used: an argument, the image. */
export interface BadUserInputDetails {
  /** The argument at fault (`instructions`, `language`, ...). */
  argument?: string
  /** Why an image was refused, as a stable word (`too_many_pixels`, `animated`, ...). */
  reason?: string
  /** The image types the service accepts. */
  acceptedTypes?: readonly string[]
  /** An image's estimated decode size, and the most accepted (IMAGE_MAX_DECODE_BYTES). */
  estimatedDecodeBytes?: number
  maxDecodeBytes?: number
}

export class BadUserInputError extends AppError {
  readonly code = 'BAD_USER_INPUT'
  readonly fields: BadUserInputDetails

  constructor (message: string, fields: BadUserInputDetails = {}, options: ErrorOptions = {}) {
    super(message, options)
    this.fields = fields
  }

  override details (): Record<string, unknown> { return { ...this.fields } }
}

export class ContentFilteredError extends AppError {
  readonly code = 'CONTENT_FILTERED'
}

/** The model declined to answer (structured outputs' `message.refusal`); its words, cut short, in `extensions.refusal`. */
export class ModelRefusedError extends AppError {
  readonly code = 'MODEL_REFUSED'
  readonly refusal: string

  constructor (message: string, refusal: string, options: ErrorOptions = {}) {
    super(message, options)
    this.refusal = refusal
  }

  override details (): Record<string, unknown> { return { refusal: this.refusal } }
}

export class InternalServerError extends AppError {
  readonly code = 'INTERNAL_SERVER_ERROR'
}

// Who is calling

/** A refusal of the caller's credentials, with the `WWW-Authenticate` challenge to send back. */
abstract class CredentialsRefusedError extends AppError {
  challenge: string | undefined

  constructor (message: string, options: ErrorOptions & { challenge?: string } = {}) {
    super(message, options)
    this.challenge = options.challenge
  }

  withChallenge (challenge: string): this {
    this.challenge = challenge
    return this
  }
}

export class UnauthenticatedError extends CredentialsRefusedError {
  readonly code = 'UNAUTHENTICATED'
  override readonly statusCode = 401
}

export class ForbiddenError extends CredentialsRefusedError {
  readonly code = 'FORBIDDEN'
  override readonly statusCode = 403
  /** Who was refused (their credentials were valid), for the log. */
  caller: { id: string, kind: string } | undefined

  refusing (caller: { id: string, kind: string }): this {
    this.caller = { id: caller.id, kind: caller.kind }
    return this
  }
}

/** A caller's token cannot be checked now (Entra's signing keys unreachable): not the caller's fault. */
export class CallerVerificationUnavailableError extends RetryableError {
  readonly code = 'AUTH_UNAVAILABLE'
  override readonly statusCode = 503
}

// Our own limits

export class RateLimitedError extends RetryableError {
  readonly code = 'RATE_LIMITED'
  override readonly statusCode = 429
}

export class OverloadedError extends RetryableError {
  readonly code = 'OVERLOADED'
  override readonly statusCode = 503
}

/** A caller already holds SUBSCRIPTIONS_PER_CALLER subscriptions (on all its sockets): one must end first. */
export class TooManySubscriptionsError extends AppError {
  readonly code = 'TOO_MANY_SUBSCRIPTIONS'
  override readonly statusCode = 429
  readonly limit: number

  constructor (limit: number) {
    super(`A caller may hold at most ${limit} subscriptions at once; end one (complete it) before starting another.`)
    this.limit = limit
  }

  override details (): Record<string, unknown> { return { limit: this.limit } }
}

// History (src/history/)

/** The history database cannot be reached (or HISTORY=off): history queries fail; identifications go on. */
export class StorageUnavailableError extends RetryableError {
  readonly code = 'STORAGE_UNAVAILABLE'
  override readonly statusCode = 503
}

/** A resource outside GraphQL (a thumbnail) that does not exist (GraphQL answers null for a missing identification). */
export class NotFoundError extends AppError {
  readonly code = 'NOT_FOUND'
  override readonly statusCode = 404
}

/** An Idempotency-Key whose first request is still running (IETF httpapi idempotency draft: 409). */
export class IdempotencyKeyInUseError extends RetryableError {
  readonly code = 'IDEMPOTENCY_KEY_IN_USE'
  override readonly statusCode = 409
}

/** A malformed Idempotency-Key header: the request's fault, not an argument's, so HTTP 400. */
export class InvalidIdempotencyKeyError extends BadUserInputError {
  override readonly statusCode = 400
}

/** An Idempotency-Key sent again with another image or other arguments (the draft: 422). */
export class IdempotencyKeyReusedError extends AppError {
  readonly code = 'IDEMPOTENCY_KEY_REUSED'
  override readonly statusCode = 422
}

// Webhooks (src/webhooks/)

/** A webhook endpoint URL refused (SSRF rules): not https, or its host is or resolves to an internal address. */
export class InvalidWebhookUrlError extends AppError {
  readonly code = 'WEBHOOK_URL_REFUSED'
  /** Why, as a stable word (`scheme`, `private_address`, `loopback`, `unresolvable`, ...). */
  readonly reason: string

  constructor (message: string, reason: string) {
    super(message)
    this.reason = reason
  }

  override details (): Record<string, unknown> { return { reason: this.reason } }
}

// Bulk archives (src/bulk/archive/)

/**
 * A ZIP archive refused as a whole (not a readable ZIP, too many entries, a bomb's shape): no job is made.
 * `reason` is a stable word (`archive_unreadable`, `too_many_entries`, `overlapping_entries`, ...).
 */
export class BulkArchiveError extends BadUserInputError {
  readonly reason: string

  constructor (message: string, reason: string, options: ErrorOptions = {}) {
    super(message, { argument: 'archive', reason }, options)
    this.reason = reason
  }
}

/**
 * One entry of an archive that cannot be used (`reason`: `encrypted`, `unsafe_name`, `size_mismatch`, ...): its item
 * fails, the job goes on.
 */
export class ArchiveEntryRefusedError extends BadUserInputError {
  readonly reason: string

  constructor (message: string, reason: string, options: ErrorOptions = {}) {
    super(message, { reason }, options)
    this.reason = reason
  }
}

/** One entry of an archive larger than MAX_UPLOAD_BYTES, as identifyVehicle refuses such a photo: its item fails. */
export class ArchiveEntryTooLargeError extends PayloadTooLargeError {
  readonly reason = 'too_large'

  override details (): Record<string, unknown> { return { ...super.details(), reason: this.reason } }
}

// Azure, and the identity endpoint in front of it

export abstract class UpstreamError extends RetryableError {
  constructor (message: string, options: ErrorOptions & { retryAfterSeconds?: number } = {}) {
    super(message, options.retryAfterSeconds, options)
  }
}

export class UpstreamRateLimitedError extends UpstreamError {
  readonly code = 'UPSTREAM_RATE_LIMITED'
}

export class UpstreamUnavailableError extends UpstreamError {
  readonly code = 'UPSTREAM_UNAVAILABLE'
}

export class UpstreamTimeoutError extends UpstreamError {
  readonly code = 'UPSTREAM_TIMEOUT'
}

export class UpstreamAuthError extends UpstreamError {
  readonly code = 'UPSTREAM_AUTH'
}

/** The model's answer was not JSON of the requested shape, twice (the first such answer is asked again). */
export class UpstreamInvalidResponseError extends UpstreamError {
  readonly code = 'UPSTREAM_INVALID_RESPONSE'
}

/** No Entra ID token for Azure could be had (the managed identity endpoint failed or timed out). */
export class TokenUnavailableError extends UpstreamError {
  readonly code = 'AUTH_UNAVAILABLE'
}
