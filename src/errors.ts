// One error type for everything the service refuses or fails at on purpose.
// `code` becomes `extensions.code` in GraphQL responses; `statusCode` is used when the error
// ends the HTTP request before GraphQL execution (multipart parsing, auth, overload).

export type ErrorCode =
  | 'BAD_REQUEST'
  | 'PAYLOAD_TOO_LARGE'
  | 'BAD_USER_INPUT'
  | 'GRAPHQL_PARSE_FAILED'
  | 'GRAPHQL_VALIDATION_FAILED'
  | 'UPSTREAM_RATE_LIMITED'
  | 'UPSTREAM_UNAVAILABLE'
  | 'UPSTREAM_TIMEOUT'
  | 'UPSTREAM_AUTH'
  | 'CONTENT_FILTERED'
  | 'AUTH_UNAVAILABLE'
  | 'CLIENT_CLOSED_REQUEST'
  | 'UPLOAD_TIMEOUT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'OVERLOADED'
  | 'INTERNAL_SERVER_ERROR'

export interface AppErrorOptions {
  statusCode?: number
  /** Extra `extensions` fields, e.g. `retryAfter`. Never secrets. */
  extensions?: Record<string, unknown>
  cause?: unknown
}

export class AppError extends Error {
  override name = 'AppError'
  readonly code: ErrorCode
  readonly statusCode: number
  readonly extensions: Record<string, unknown>

  constructor (code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.statusCode = options.statusCode ?? 200
    this.extensions = { code, ...options.extensions }
  }
}

export const badRequest = (message: string): AppError => new AppError('BAD_REQUEST', message, { statusCode: 400 })
/** The client went away before its answer: 499, nginx's status for it (rarely seen by anyone, but logged and counted). */
export const clientClosedRequest = (message: string, cause?: unknown): AppError =>
  new AppError('CLIENT_CLOSED_REQUEST', message, { statusCode: 499, cause })
export const badUserInput = (message: string, extensions?: Record<string, unknown>): AppError =>
  new AppError('BAD_USER_INPUT', message, { extensions })

/** The body of an HTTP error answered before GraphQL runs, shaped like a GraphQL response. */
export function graphqlErrorBody (err: AppError): { data: null, errors: Array<{ message: string, extensions: Record<string, unknown> }> } {
  return { data: null, errors: [{ message: err.message, extensions: err.extensions }] }
}
