// The error catalogue: each kind's fixed code and status, its typed fields in `extensions`, its family,
// and the one place that turns it into an HTTP answer.
import t from 'tap'
import Fastify from 'fastify'
import {
  AppError, BadRequestError, BadUserInputError, CallerVerificationUnavailableError, ClientClosedRequestError, ForbiddenError,
  MethodNotAllowedError, ModelRefusedError, OverloadedError, PayloadTooLargeError, QueryRejectedError, RateLimitedError,
  TokenUnavailableError, UnauthenticatedError, UploadTimeoutError, UpstreamAuthError, UpstreamError, UpstreamInvalidResponseError,
  UpstreamRateLimitedError, UpstreamTimeoutError, UpstreamUnavailableError
} from '../src/errors.ts'
import * as errorKinds from '../src/errors.ts'
import { sendError } from '../src/http/send-error.ts'
import { loadSchemaSDL } from '../src/graphql/schema.ts'
import { buildSchema, type GraphQLEnumType } from 'graphql'
import { buildTestApp } from './helper.ts'

t.test('each kind has its fixed code, status and fields', async t => {
  const cases: Array<[AppError, string, number, Record<string, unknown>]> = [
    [new BadRequestError('x'), 'BAD_REQUEST', 400, {}],
    [new MethodNotAllowedError('x', ['POST']), 'BAD_REQUEST', 405, {}],
    [new PayloadTooLargeError('x', 1024), 'PAYLOAD_TOO_LARGE', 413, { maxBytes: 1024 }],
    [new UploadTimeoutError(5000), 'UPLOAD_TIMEOUT', 408, { idleTimeoutMs: 5000 }],
    [new QueryRejectedError('x'), 'GRAPHQL_VALIDATION_FAILED', 400, {}],
    [new BadUserInputError('x', { argument: 'language' }), 'BAD_USER_INPUT', 200, { argument: 'language' }],
    [new ClientClosedRequestError('x'), 'CLIENT_CLOSED_REQUEST', 499, {}],
    [new UnauthenticatedError('x'), 'UNAUTHENTICATED', 401, {}],
    [new ForbiddenError('x'), 'FORBIDDEN', 403, {}],
    [new CallerVerificationUnavailableError('x', 5), 'AUTH_UNAVAILABLE', 503, { retryAfter: 5 }],
    [new RateLimitedError('x', 30), 'RATE_LIMITED', 429, { retryAfter: 30 }],
    [new OverloadedError('x', 8), 'OVERLOADED', 503, { retryAfter: 8 }],
    [new UpstreamRateLimitedError('x', { retryAfterSeconds: 0 }), 'UPSTREAM_RATE_LIMITED', 200, { retryAfter: 0 }],
    [new UpstreamRateLimitedError('x'), 'UPSTREAM_RATE_LIMITED', 200, {}],
    [new TokenUnavailableError('x'), 'AUTH_UNAVAILABLE', 200, {}],
    [new ModelRefusedError('x', 'I cannot help with that.'), 'MODEL_REFUSED', 200, { refusal: 'I cannot help with that.' }],
    [new UpstreamInvalidResponseError('x'), 'UPSTREAM_INVALID_RESPONSE', 200, {}]
  ]
  for (const [err, code, status, fields] of cases) {
    t.equal(err.code, code, err.name)
    t.equal(err.statusCode, status, err.name)
    t.same(err.extensions, { code, ...fields }, err.name)
    t.equal(err.name, err.constructor.name)
  }
})

t.test('families by inheritance', async t => {
  for (const err of [new UpstreamRateLimitedError('x'), new UpstreamUnavailableError('x'), new UpstreamTimeoutError('x'), new UpstreamAuthError('x'), new TokenUnavailableError('x'),
    new UpstreamInvalidResponseError('x')]) {
    t.ok(err instanceof UpstreamError, err.name)
  }
  for (const err of [new CallerVerificationUnavailableError('x', 1), new BadUserInputError('x'), new RateLimitedError('x', 1), new ModelRefusedError('x', 'no')]) {
    t.notOk(err instanceof UpstreamError, err.name)
  }
  const cause = new Error('socket hang up')
  t.equal(new UpstreamUnavailableError('x', { cause }).cause, cause)
})

t.test('sendError: status, headers and a GraphQL-shaped body from the kind', async t => {
  const app = Fastify()
  const errors: Record<string, AppError> = {
    overloaded: new OverloadedError('busy', 5),
    unauthenticated: new UnauthenticatedError('no', { challenge: 'Bearer realm="agrivision"' }),
    method: new MethodNotAllowedError('GET not', ['POST']),
    limited: new RateLimitedError('slow down', 12)
  }
  app.get('/:kind', async (request, reply) => sendError(reply, errors[(request.params as { kind: string }).kind] as AppError))
  t.teardown(() => app.close())
  const overloaded = await app.inject('/overloaded')
  t.equal(overloaded.statusCode, 503)
  t.equal(overloaded.headers['retry-after'], '5')
  t.same(overloaded.json(), { data: null, errors: [{ message: 'busy', extensions: { code: 'OVERLOADED', retryAfter: 5 } }] })
  const unauthenticated = await app.inject('/unauthenticated')
  t.equal(unauthenticated.statusCode, 401)
  t.equal(unauthenticated.headers['www-authenticate'], 'Bearer realm="agrivision"')
  const method = await app.inject('/method')
  t.equal(method.statusCode, 405)
  t.equal(method.headers.allow, 'POST')
  t.equal((await app.inject('/limited')).headers['retry-after'], '12')
})

// tsc checks one way (a class's `code` must be an ErrorCode of the SDL); this checks the other: no value of the
// SDL's enum that nothing sends, and the running server publishes the enum for clients to generate from.
t.test('the SDL\'s ErrorCode is exactly the codes the error kinds carry, and the server publishes it', async t => {
  const codesOfKinds = new Set<string>()
  for (const kind of Object.values(errorKinds)) {
    if (typeof kind !== 'function' || !(kind.prototype instanceof AppError)) continue
    // Instance fields hold the code: make one (abstract kinds are classes at run time; their code stays undefined).
    const instance = new (kind as unknown as new (...args: unknown[]) => AppError)('x', 1)
    if (typeof instance.code === 'string') codesOfKinds.add(instance.code)
  }
  // Made by src/graphql/errors.ts from graphql-js's own syntax errors, not by a kind.
  codesOfKinds.add('GRAPHQL_PARSE_FAILED')
  const inSdl = (buildSchema(loadSchemaSDL()).getType('ErrorCode') as GraphQLEnumType).getValues().map(value => value.name)
  t.same(inSdl.toSorted(), [...codesOfKinds].sort())
  t.ok(codesOfKinds.has('WEBHOOK_URL_REFUSED') && codesOfKinds.size > 20, 'the kinds were all found')

  const app = await buildTestApp(t)
  const published = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ __type(name: "ErrorCode") { kind enumValues { name description } } }' } })
  const type = published.json().data.__type
  t.equal(type.kind, 'ENUM')
  t.same(type.enumValues.map((value: { name: string }) => value.name), inSdl)
  t.ok(type.enumValues.every((value: { description: string | null }) => (value.description ?? '').length > 0), 'each value says what it means')
})
