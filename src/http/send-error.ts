// Our errors as HTTP, for every route: the status of their kind and the headers it calls for (Retry-After,
// WWW-Authenticate, Allow). GraphQL responses get their headers here too (src/graphql/errors.ts); routes outside
// GraphQL (the pressure hook, thumbnails) answer with sendError, in the same GraphQL-shaped body.
import type { FastifyReply } from 'fastify'
import { AppError, ForbiddenError, MethodNotAllowedError, RetryableError, UnauthenticatedError } from '../errors.ts'

/** Answers a request with one of our errors outside GraphQL execution (e.g. the pressure hook), GraphQL-shaped. */
export function sendError (reply: FastifyReply, err: AppError): FastifyReply {
  setErrorHeaders(reply, err, err.statusCode)
  return reply.code(err.statusCode).send({ data: null, errors: [{ message: err.message, extensions: err.extensions }] })
}

/** Where Retry-After means something: rate limited, unavailable, and 409 IDEMPOTENCY_KEY_IN_USE (the first still runs). */
const RETRY_AFTER_STATUSES = new Set([409, 429, 503])

export function setErrorHeaders (reply: FastifyReply, err: AppError, statusCode: number): void {
  if (err instanceof RetryableError && err.retryAfterSeconds !== undefined && RETRY_AFTER_STATUSES.has(statusCode)) {
    reply.header('retry-after', String(err.retryAfterSeconds))
  }
  if ((err instanceof UnauthenticatedError || err instanceof ForbiddenError) && err.challenge !== undefined) {
    reply.header('www-authenticate', err.challenge)
  }
  if (err instanceof MethodNotAllowedError) reply.header('allow', err.allow.join(', '))
}
