// Caller verification as a pure step: credentials in, a Caller or a typed error out. The HTTP hook
// (plugin.ts) reads them from headers; a WebSocket's `connection_init` payload gives the same shape.
//
// - entra: `Authorization: Bearer <Entra ID access token>` (entra.ts).
// - apikey: `x-api-key: <key>`, matched by SHA-256 against API_KEY_HASHES (api-keys.ts).
// - both: an Authorization header is verified as an Entra token (and must pass); without one, x-api-key.
// - none: everyone is ANONYMOUS.
//
// Refusals: UnauthenticatedError (401) and ForbiddenError (403), each with the WWW-Authenticate
// challenge to send; CallerVerificationUnavailableError (503) when Entra's keys cannot be fetched.
// Messages say what is wrong, never what was sent.
import type { FastifyBaseLogger } from 'fastify'
import { ForbiddenError, UnauthenticatedError } from '../errors.ts'
import { createApiKeyMatcher } from './api-keys.ts'
import { ANONYMOUS, type Caller } from './caller.ts'
import type { CallersConfig } from './config.ts'
import { createEntraVerifier } from './entra.ts'

export const REALM = 'agrivision'

export interface Credentials {
  /** The Authorization header's value. */
  authorization?: unknown
  /** The x-api-key header's value. */
  apiKey?: unknown
}

export type CallerVerifier = (credentials: Credentials) => Promise<Caller>

export function credentialsFromHeaders (headers: Record<string, string | string[] | undefined>): Credentials {
  return { authorization: headers.authorization, apiKey: headers['x-api-key'] }
}

/** graphql-ws clients send `{ authorization: "Bearer …" }` or `{ "x-api-key": "…" }` in connection_init. */
export function credentialsFromPayload (payload: unknown): Credentials {
  if (payload === null || typeof payload !== 'object') return {}
  const record = payload as Record<string, unknown>
  return { authorization: record.authorization ?? record.Authorization, apiKey: record['x-api-key'] }
}

/** Built once per app: the JWKS cache and the key hashes live as long as the verifier. */
export function createCallerVerifier (auth: CallersConfig, log: FastifyBaseLogger): CallerVerifier {
  const entra = auth.modes.includes('entra') && auth.entra ? createEntraVerifier(auth.entra, { log }) : null
  const matchApiKey = auth.modes.includes('apikey') ? createApiKeyMatcher(auth.apiKeys) : null
  if (auth.modes.includes('entra') && entra === null) throw new Error('AUTH_MODE includes entra but the Entra ID configuration is missing')
  const requiredScope = auth.entra?.requiredRoles.join(' ') ?? ''
  const challenges = auth.modes.map(mode => mode === 'entra' ? `Bearer realm="${REALM}"` : `ApiKey realm="${REALM}"`).join(', ')

  /** For a request that brought no (usable) credentials: the challenges of every configured scheme. */
  const missing = (message: string): UnauthenticatedError => new UnauthenticatedError(message, { challenge: challenges })

  return async function verifyCaller ({ authorization, apiKey }: Credentials): Promise<Caller> {
    if (auth.modes.length === 0) return ANONYMOUS
    if (entra !== null && authorization !== undefined) {
      const match = typeof authorization === 'string' ? /^Bearer +([^\s]+) *$/i.exec(authorization) : null
      if (!match) throw missing('The Authorization header must be "Bearer <access token>".')
      let caller: Caller
      try {
        caller = await entra.authenticate(match[1] as string)
      } catch (err) {
        if (err instanceof UnauthenticatedError) throw err.withChallenge(bearerChallenge('invalid_token', err.message))
        throw err
      }
      try {
        entra.authorize(caller)
      } catch (err) {
        if (err instanceof ForbiddenError) throw err.withChallenge(bearerChallenge('insufficient_scope', err.message, requiredScope)).refusing(caller)
        throw err
      }
      return caller
    }
    if (matchApiKey !== null && typeof apiKey === 'string') {
      const entry = matchApiKey(apiKey)
      if (entry === null) throw new UnauthenticatedError('The API key is not valid (unknown or revoked).', { challenge: `ApiKey realm="${REALM}"` })
      return { kind: 'apikey', id: entry.id, name: entry.id, roles: new Set(entry.roles) }
    }
    if (entra === null && authorization !== undefined) throw missing('This service takes an API key in the x-api-key header, not an Authorization header.')
    if (entra !== null && matchApiKey === null) throw missing('Credentials are required: send "Authorization: Bearer <Microsoft Entra ID access token>".')
    if (entra === null) throw missing('Credentials are required: send an API key in the x-api-key header.')
    throw missing('Credentials are required: send "Authorization: Bearer <Microsoft Entra ID access token>" or an API key in the x-api-key header.')
  }
}

/** An RFC 6750 challenge. The description is ours (never token text), reduced to the characters the RFC allows. */
function bearerChallenge (error: 'invalid_token' | 'insufficient_scope', description: string, scope?: string): string {
  const quoted = (value: string): string => `"${value.replace(/[^\x20-\x7e]/g, ' ').replace(/["\\]/g, '\'')}"`
  let challenge = `Bearer realm="${REALM}", error="${error}", error_description=${quoted(description)}`
  if (scope) challenge += `, scope=${quoted(scope)}`
  return challenge
}
