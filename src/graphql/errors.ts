// The one place errors become HTTP: every error leaves with `extensions.code` (Apollo's codes plus
// ours), its status, and the headers its kind calls for (Retry-After, WWW-Authenticate, Allow),
// whatever raised it: graphql-js (parse, validation, variables), mercurius (CSRF), our hooks and
// resolvers (headers: src/http/send-error.ts, which also answers routes outside GraphQL). Unexpected errors get a generic message; their
// detail goes to the log only.
import { GraphQLError, type ExecutionResult, type FormattedExecutionResult, type GraphQLFormattedError } from 'graphql'
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import {
  AppError, CallerVerificationUnavailableError, UpstreamError,
  type ErrorCode
} from '../errors.ts'
import { tooDeep } from './rules.ts'
import { setErrorHeaders } from '../http/send-error.ts'

interface FormatterResult {
  statusCode: number
  response: FormattedExecutionResult
}

interface Formatted {
  error: GraphQLFormattedError
  statusCode: number
  /** Ours, when it is one: its kind decides the headers. */
  appError?: AppError
}

export const CSRF_MESSAGE = 'This request has been blocked as a potential cross-site request forgery: ' +
  'multipart uploads and GET requests need a `graphql-require-preflight: 1` header (or `apollo-require-preflight`); ' +
  'JSON POST requests need `content-type: application/json`.'

export function formatErrors (
  execution: ExecutionResult & { statusCode?: number },
  log: FastifyBaseLogger,
  reply?: FastifyReply,
  retrySafe = true
): FormatterResult {
  const formatted = (execution.errors ?? []).flatMap(error => formatOne(error, log))
  let statusCode = 200
  let deciding: AppError | undefined
  // A mutation of several fields whose field failed may have done something before it (identified a photo): its
  // field errors leave the status at 200, as GraphQL over HTTP has it, so that nothing retries it on the status.
  const fieldErrorsOnly = (execution.errors ?? []).length > 0 && (execution.errors ?? []).every(error => error.path !== undefined)
  if (!retrySafe && fieldErrorsOnly) {
    statusCode = 200
  } else if (!execution.data) {
    statusCode = execution.statusCode ?? Math.max(200, ...formatted.map(f => f.statusCode))
    // A request-level refusal: the headers of the error that set the status.
    deciding = formatted.find(f => f.statusCode === statusCode)?.appError
  } else {
    // A field that failed because something the service needs is unavailable (the history database, ...) makes
    // the whole response 503 with its Retry-After, even when other fields answered (a nullable field's error leaves
    // `data`): clients and proxies retry on the status, and the README's error table promises it.
    deciding = formatted.find(f => f.appError?.statusCode === UNAVAILABLE)?.appError
    if (deciding !== undefined) statusCode = UNAVAILABLE
  }
  if (reply !== undefined && deciding !== undefined) setErrorHeaders(reply, deciding, statusCode)
  return { statusCode, response: { data: execution.data ?? null, errors: formatted.map(f => f.error) } }
}

const UNAVAILABLE = 503

function formatOne (error: GraphQLError, log: FastifyBaseLogger): Formatted[] {
  const original = error.originalError as (Error & { code?: string, statusCode?: number, errors?: unknown }) | undefined

  // mercurius wraps validation failures in one error that carries graphql-js's errors
  if (original && Array.isArray(original.errors) && original.errors.length > 0) {
    return (original.errors as GraphQLError[]).flatMap(inner => formatOne(toGraphQLError(inner), log))
  }
  if (original instanceof AppError) {
    logAppError(original, log)
    // Without a path it is not a field's error but the request's (invalid variables): 400, as for
    // graphql-js's own variable errors, whether or not the query was compiled by graphql-jit.
    const statusCode = original.statusCode === 200 && error.path === undefined ? 400 : original.statusCode
    return [{ ...shape(error, original.message, original.extensions, statusCode), appError: original }]
  }
  if (isStackOverflow(original)) { // the parser's or a rule's stack, on a pathologically nested document
    const tooDeepError = tooDeep()
    return [shape(error, tooDeepError.message, tooDeepError.extensions, 400)]
  }
  if (original === undefined || original instanceof GraphQLError) {
    return [shape(error, error.message, { code: classifyGraphQLError(error.message) }, 400)]
  }
  if (original.code === 'MER_ERR_GQL_QUERY_DEPTH') { // mercurius gives it status 500: it is the query's fault
    return [shape(error, original.message, { code: 'GRAPHQL_VALIDATION_FAILED' satisfies ErrorCode }, 400)]
  }
  const statusCode = original.statusCode
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    if (statusCode === 413) { // a JSON body over GRAPHQL_MAX_BODY_BYTES
      return [shape(error, original.message, { code: 'PAYLOAD_TOO_LARGE' satisfies ErrorCode }, 413)]
    }
    // Fastify and mercurius errors for bad requests (invalid JSON body, CSRF, query depth, ...)
    return [shape(error, original.code === 'MER_ERR_GQL_CSRF_PREVENTION' ? CSRF_MESSAGE : original.message, { code: 'BAD_REQUEST' satisfies ErrorCode }, statusCode)]
  }
  log.error({ err: original }, 'unexpected error in GraphQL execution')
  return [shape(error, 'Internal server error.', { code: 'INTERNAL_SERVER_ERROR' satisfies ErrorCode }, 500)]
}

function isStackOverflow (err: unknown): boolean {
  return err instanceof RangeError && err.message.startsWith('Maximum call stack size exceeded')
}

function shape (error: GraphQLError, message: string, extensions: Record<string, unknown>, statusCode: number): Formatted {
  const formatted: GraphQLFormattedError = {
    message,
    ...(error.locations ? { locations: error.locations } : {}),
    ...(error.path ? { path: error.path } : {}),
    extensions
  }
  return { error: formatted, statusCode }
}

function classifyGraphQLError (message: string): ErrorCode {
  if (message.startsWith('Syntax Error')) return 'GRAPHQL_PARSE_FAILED'
  if (message.startsWith('Variable "$')) return 'BAD_USER_INPUT'
  return 'GRAPHQL_VALIDATION_FAILED'
}

function toGraphQLError (err: GraphQLError | Error): GraphQLError {
  return err instanceof GraphQLError ? err : new GraphQLError(err.message, { originalError: err })
}

function logAppError (err: AppError, log: FastifyBaseLogger): void {
  const upstream = err instanceof UpstreamError || err instanceof CallerVerificationUnavailableError
  if (err.code === 'INTERNAL_SERVER_ERROR') log.error({ err }, err.message)
  // An upstream answer (it has a cause) is worth a warning; a refusal during a 429 cool-down is not, once per request.
  else if (upstream && err.cause !== undefined) log.warn({ code: err.code, err: err.cause }, err.message)
  else if (upstream) log.info({ code: err.code }, err.message)
  else log.debug({ code: err.code }, err.message)
}
