// Caller authentication (AUTH_MODE): who is calling, and may they? Decorates `request.caller` and
// `app.authenticate`, an onRequest hook the GraphQL routes use (so nothing is read from an
// unauthenticated upload). /health/* does not use it.
//
// - entra: `Authorization: Bearer <Entra ID access token>` (src/callers/entra.ts).
// - apikey: `x-api-key: <key>`, matched by SHA-256 against API_KEY_HASHES (src/callers/api-keys.ts).
// - both: an Authorization header is verified as an Entra token (and must pass); without one, x-api-key.
// - none: everyone is { kind: 'anonymous' }.
//
// Credentials are never taken from the URL: a request whose query string carries a credential-looking
// parameter (`api_key`, `x-api-key`, `access_token`, `token`, `code`, `client_secret`, ..., or any value
// shaped like one of our API keys or a JWT) is refused with 400 BAD_REQUEST, in every mode, whatever
// its headers say: a URL ends up in proxy, browser and server logs (ours log query values redacted,
// src/logger.ts), so the credential must be treated as leaked, and the client should hear so at once.
//
// Refusals: 401 UNAUTHENTICATED (no or bad credentials), 403 FORBIDDEN (valid token without the
// required scope/role), both with a WWW-Authenticate challenge; 503 AUTH_UNAVAILABLE when Entra's
// signing keys cannot be fetched. Messages say what is wrong, never what was sent. The caller's id
// and kind go into every later log line of the request; the token or key never does.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.ts'
import { AppError, badRequest } from '../errors.ts'
import { looksLikeCredential } from '../logger.ts'
import { createApiKeyMatcher } from './api-keys.ts'
import { createEntraVerifier, unauthenticated, type EntraVerifier } from './entra.ts'

export interface Caller {
  /** How the caller proved who it is. */
  kind: 'entra-user' | 'entra-app' | 'apikey' | 'anonymous'
  /** A stable id for logs and rate limits: the Entra oid/appid, or the API key's id. Never a secret. */
  id: string
  /** Entra: the tenant the token was issued by (`tid`). */
  tenantId?: string
  /** Entra user tokens: the delegated permissions (`scp`). */
  scopes?: string[]
  /** Entra: the app roles (`roles`). */
  roles?: string[]
  /** A display name (the user's or app's name, the API key's id). Not logged: it may be personal data. */
  name?: string
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller | null
  }
  interface FastifyInstance {
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

export interface CallerAuthOptions {
  auth: Config['auth']
}

export const REALM = 'agrivision'
export const ANONYMOUS: Caller = Object.freeze({ kind: 'anonymous', id: 'anonymous' })

async function callerAuth (app: FastifyInstance, { auth }: CallerAuthOptions): Promise<void> {
  app.decorateRequest('caller', null)

  const useEntra = auth.modes.includes('entra')
  const useApiKeys = auth.modes.includes('apikey')
  if (useEntra && auth.entra === null) throw new Error('AUTH_MODE includes entra but the Entra ID configuration is missing')
  // Created once per app: the JWKS cache and the key hashes live as long as the app.
  const entra: EntraVerifier | null = useEntra && auth.entra ? createEntraVerifier(auth.entra, { log: app.log }) : null
  const matchApiKey = useApiKeys ? createApiKeyMatcher(auth.apiKeys) : null
  const requiredScope = auth.entra?.requiredRoles.join(' ') ?? ''

  function identified (request: FastifyRequest, reply: FastifyReply, caller: Caller): void {
    const log = request.log.child({ caller: caller.id, callerKind: caller.kind })
    request.log = log
    reply.log = log // Fastify's "request completed" line and mercurius's error logs use reply.log
  }

  function refuse (request: FastifyRequest, reply: FastifyReply, err: AppError, challenge: string | null): AppError {
    if (challenge !== null) reply.header('www-authenticate', challenge)
    if (err.code === 'AUTH_UNAVAILABLE') reply.header('retry-after', String(err.extensions.retryAfter ?? 5))
    else request.log.info({ code: err.code, reason: err.message, detail: err.cause instanceof Error ? err.cause.message : undefined }, 'caller refused')
    return err
  }

  /** The challenges of every configured scheme, for a request that brought no (usable) credentials. */
  function missing (request: FastifyRequest, reply: FastifyReply, message: string): AppError {
    const challenges = auth.modes.map(mode => mode === 'entra' ? `Bearer realm="${REALM}"` : `ApiKey realm="${REALM}"`)
    return refuse(request, reply, unauthenticated(message), challenges.join(', '))
  }

  async function withBearer (request: FastifyRequest, reply: FastifyReply, verifier: EntraVerifier, authorization: string): Promise<void> {
    const match = /^Bearer +([^\s]+) *$/i.exec(authorization)
    if (!match) throw missing(request, reply, 'The Authorization header must be "Bearer <access token>".')
    let caller: Caller
    try {
      caller = await verifier.authenticate(match[1] as string)
    } catch (err) {
      if (err instanceof AppError && err.code === 'UNAUTHENTICATED') throw refuse(request, reply, err, bearerChallenge('invalid_token', err.message))
      if (err instanceof AppError) throw refuse(request, reply, err, null)
      throw err
    }
    identified(request, reply, caller)
    try {
      verifier.authorize(caller)
    } catch (err) {
      if (err instanceof AppError) throw refuse(request, reply, err, bearerChallenge('insufficient_scope', err.message, requiredScope))
      throw err
    }
    request.caller = caller
  }

  function withApiKey (request: FastifyRequest, reply: FastifyReply, match: NonNullable<typeof matchApiKey>, key: string): void {
    const entry = match(key)
    if (entry === null) {
      throw refuse(request, reply, unauthenticated('The API key is not valid (unknown or revoked).'), `ApiKey realm="${REALM}"`)
    }
    const caller: Caller = { kind: 'apikey', id: entry.id, name: entry.id }
    identified(request, reply, caller)
    request.caller = caller
  }

  app.decorate('authenticate', async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const inUrl = credentialInQuery(request.url)
    if (inUrl !== null) {
      throw refuse(request, reply, badRequest(`Credentials are not accepted in the URL (${inUrl}). ` +
        'Send them in a header instead: "Authorization: Bearer <token>" or "x-api-key: <key>"; and treat this one as leaked (URLs are logged by proxies and browsers): revoke or rotate it.'), null)
    }
    if (auth.modes.length === 0) {
      request.caller = ANONYMOUS // no child logger: nothing to add, and it costs on every request
      return
    }
    const { authorization } = request.headers
    const apiKey = request.headers['x-api-key']
    if (entra !== null && authorization !== undefined) return await withBearer(request, reply, entra, authorization)
    if (matchApiKey !== null && typeof apiKey === 'string') return withApiKey(request, reply, matchApiKey, apiKey)
    if (entra === null && authorization !== undefined) throw missing(request, reply, 'This service takes an API key in the x-api-key header, not an Authorization header.')
    if (entra !== null && matchApiKey === null) throw missing(request, reply, 'Credentials are required: send "Authorization: Bearer <Microsoft Entra ID access token>".')
    if (entra === null) throw missing(request, reply, 'Credentials are required: send an API key in the x-api-key header.')
    throw missing(request, reply, 'Credentials are required: send "Authorization: Bearer <Microsoft Entra ID access token>" or an API key in the x-api-key header.')
  })
}

/** Query parameter names that carry credentials, compared lower-case without "-" and "_". */
const CREDENTIAL_PARAM_NAMES = new Set(['key', 'code', 'auth', 'authorization', 'bearer', 'jwt', 'sig', 'pwd', 'session', 'sessionid', 'assertion'])
const CREDENTIAL_PARAM_SUFFIX = /(apikey|token|secret|passw(?:or)?d|credentials?|signature|subscriptionkey)$/

/** What in the URL's query string looks like a credential (a description without the value), or null. */
export function credentialInQuery (url: string): string | null {
  const q = url.indexOf('?')
  if (q === -1) return null
  let params: URLSearchParams
  try {
    params = new URLSearchParams(url.slice(q + 1))
  } catch {
    return null
  }
  for (const [name, value] of params) {
    const plain = name.toLowerCase().replace(/[-_\s]/g, '')
    if (CREDENTIAL_PARAM_NAMES.has(plain) || CREDENTIAL_PARAM_SUFFIX.test(plain)) {
      return /^[\w.-]{1,40}$/.test(name) ? `the query parameter "${name}"` : 'a credential query parameter'
    }
    if (looksLikeCredential(name) || looksLikeCredential(value)) return 'a query value that looks like an API key or access token'
  }
  return null
}

/** An RFC 6750 challenge. The description is ours (never token text), reduced to the characters the RFC allows. */
function bearerChallenge (error: 'invalid_token' | 'insufficient_scope', description: string, scope?: string): string {
  const quoted = (value: string): string => `"${value.replace(/[^\x20-\x7e]/g, ' ').replace(/["\\]/g, '\'')}"`
  let challenge = `Bearer realm="${REALM}", error="${error}", error_description=${quoted(description)}`
  if (scope) challenge += `, scope=${quoted(scope)}`
  return challenge
}

export default fp(callerAuth, { name: 'caller-auth', fastify: '5.x' })
