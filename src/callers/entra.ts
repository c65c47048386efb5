// Microsoft Entra ID access tokens (AUTH_MODE=entra): `Authorization: Bearer <token>`, verified with
// jose against the tenant's published signing keys (JWKS), then told apart (delegated user token,
// app-only token, or an ID token, which is refused: see tokenKind) and checked for a required
// delegated permission (user tokens: `scp`) or app role (app tokens: `roles`).
//
// The JWKS is fetched on first use, cached for 10 minutes and refetched when a token names an
// unknown `kid` (at most once per 30 s: jose's cooldown). If a refresh fails while keys fetched
// before are known, those keep being used (Entra announces new keys well before signing with them);
// only with no keys at all is the caller told 503 AUTH_UNAVAILABLE: their token may well be fine.
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose'
import type { FastifyBaseLogger } from 'fastify'
import type { EntraConfig } from './config.ts'
import { AppError, CallerVerificationUnavailableError, ForbiddenError, UnauthenticatedError } from '../errors.ts'
import { ROLE_BY_ENTRA_NAME, type Caller, type Role } from './caller.ts'

/** The only signature algorithm Entra ID uses for access tokens. Nothing else is accepted: no `none`, no HMAC. */
export const ENTRA_ALGORITHMS = ['RS256']
/** Seconds of clock skew tolerated for `exp` and `nbf`. */
export const CLOCK_TOLERANCE_S = 60

export interface EntraVerifierOptions {
  log?: FastifyBaseLogger
  /** How long fetched keys are used before they are fetched again (jose's cacheMaxAge). */
  cacheMaxAgeMs?: number
  /** The least time between two fetches for unknown `kid`s (jose's cooldownDuration). */
  cooldownMs?: number
  /** After a failed fetch, how long to go without trying again (keys fetched before, if any, are used meanwhile). */
  failureBackoffMs?: number
}

export interface EntraVerifier {
  /** Who the token says is calling. Throws AppError UNAUTHENTICATED (401) or AUTH_UNAVAILABLE (503). */
  authenticate: (token: string) => Promise<Caller>
  /** Whether that caller may use the API. Throws AppError FORBIDDEN (403). */
  authorize: (caller: Caller) => void
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function createEntraVerifier (config: EntraConfig, options: EntraVerifierOptions = {}): EntraVerifier {
  const { log, cacheMaxAgeMs = 10 * 60_000, cooldownMs = 30_000, failureBackoffMs = 5_000 } = options
  const required = config.requiredRoles
  const tenantGuid = GUID.test(config.tenantId) ? config.tenantId.toLowerCase() : null

  // Once per app: the key cache lives here.
  const remote = createRemoteJWKSet(new URL(config.jwksUri), {
    timeoutDuration: config.jwksTimeoutMs,
    cooldownDuration: cooldownMs,
    cacheMaxAge: cacheMaxAgeMs
  })
  let backoffUntil = 0
  let stale: ReturnType<typeof createLocalJWKSet> | null = null

  const unavailable = (cause: unknown): CallerVerificationUnavailableError => new CallerVerificationUnavailableError(
    'The signing keys of Microsoft Entra ID could not be fetched, so the access token cannot be checked now. Try again shortly.',
    Math.max(1, Math.ceil(failureBackoffMs / 1000)), { cause })

  async function fromStale (
    header: Parameters<JWTVerifyGetKey>[0], token: Parameters<JWTVerifyGetKey>[1], cause: unknown
  ): Promise<CryptoKey> {
    if (stale === null) throw unavailable(cause)
    try {
      return await stale(header, token)
    } catch (err) {
      // Maybe a key published since the last successful fetch: we cannot tell now.
      if (err instanceof errors.JWKSNoMatchingKey) throw unavailable(cause ?? err)
      throw err
    }
  }

  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (Date.now() < backoffUntil) return await fromStale(header, token, undefined)
    try {
      return await remote(header, token)
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err
      // The JWKS could not be fetched (network, timeout, HTTP status, not a key set).
      backoffUntil = Date.now() + failureBackoffMs
      const known = remote.jwks()
      stale = known ? createLocalJWKSet(known) : null
      log?.warn({ err, jwksUri: config.jwksUri }, stale
        ? 'could not refresh the Entra ID signing keys (JWKS); using the keys fetched before'
        : 'could not fetch the Entra ID signing keys (JWKS)')
      return await fromStale(header, token, err)
    }
  }

  async function authenticate (token: string): Promise<Caller> {
    let payload: JWTPayload
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        algorithms: ENTRA_ALGORITHMS,
        issuer: config.issuers,
        audience: config.audiences,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['exp']
      }))
    } catch (err) {
      throw tokenError(err)
    }

    const tid = payload.tid
    if (tid !== undefined && tenantGuid !== null && (typeof tid !== 'string' || tid.toLowerCase() !== tenantGuid)) {
      throw unauthenticated('The access token was issued for another Microsoft Entra tenant.')
    }

    const tenantId = typeof tid === 'string' ? tid : undefined
    const roles = stringArray(payload.roles)
    const name = text(payload.name) ?? text(payload.preferred_username) ?? text(payload.app_displayname)
    const expiresAt = new Date((payload.exp as number) * 1000) // required and checked by jwtVerify
    switch (tokenKind(payload)) {
      case 'id':
        throw unauthenticated('The token is an ID token (it carries a nonce, at_hash or c_hash claim), not an access token. ' +
          'Ask Microsoft Entra ID for an access token for this API.')
      case 'user': {
        const id = text(payload.oid) ?? text(payload.sub)
        if (id === undefined) throw unauthenticated('The access token names no user (no oid or sub claim).')
        const scopes = (payload.scp as string).split(' ').filter(Boolean)
        return { kind: 'entra-user', id, tenantId, scopes, appRoles: roles, roles: grantedRoles(scopes), name, expiresAt }
      }
      case 'app': {
        const id = text(payload.azp) ?? text(payload.appid) ?? text(payload.oid) ?? text(payload.sub)
        if (id === undefined) throw unauthenticated('The access token names no application (no azp, appid, oid or sub claim).')
        return { kind: 'entra-app', id, tenantId, scopes: [], appRoles: roles, roles: grantedRoles(roles), name, expiresAt }
      }
      case 'unknown':
        throw unauthenticated('The token is neither a delegated access token (no scp claim) nor an app-only one (no idtyp "app", and oid differs from sub); ' +
          'ID tokens are not accepted. Ask Microsoft Entra ID for an access token for this API.')
    }
  }

  /** Our roles from what Entra granted: delegated permissions for a user, app roles for an app. */
  function grantedRoles (granted: readonly string[]): Set<Role> {
    const roles = new Set<Role>()
    if (granted.some(value => required.includes(value))) roles.add('Identify')
    // Beyond ENTRA_REQUIRED_ROLES (which grants Identify): ReadAll and Admin by their fixed names.
    for (const [entraName, role] of ROLE_BY_ENTRA_NAME) if (role !== 'Identify' && granted.includes(entraName)) roles.add(role)
    return roles
  }

  // Any of our roles lets a caller in (a dashboard may hold ReadAll only); each field then checks the role it needs.
  function authorize (caller: Caller): void {
    if (caller.roles.size > 0) return
    if (caller.kind === 'entra-user') {
      throw forbidden(`The access token lacks the delegated permission (scp) ${required.join(' or ')}.`)
    }
    throw forbidden(`The application has not been granted the app role (roles) ${required.join(' or ')}.`)
  }

  return { authenticate, authorize }
}

export function unauthenticated (message: string, cause?: unknown): UnauthenticatedError {
  return new UnauthenticatedError(message, { cause })
}

function forbidden (message: string): ForbiddenError {
  return new ForbiddenError(message)
}

/** What is wrong with the token, in words that never include it. */
function tokenError (err: unknown): AppError {
  if (err instanceof AppError) return err
  if (!(err instanceof errors.JOSEError || err instanceof TypeError)) throw err
  // jose's claim errors carry the whole payload (names, e-mail addresses): the cause keeps only code and message.
  const fail = (message: string): AppError =>
    unauthenticated(message, new Error(`${(err as { code?: string }).code ?? err.name}: ${err.message}`))
  if (err instanceof errors.JWTExpired) return fail(err.claim === 'exp' ? 'The access token has expired.' : 'The access token is too old.')
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return fail(`The access token has no ${claimName(err.claim)} claim.`)
    switch (err.claim) {
      case 'iss': return fail('The access token was not issued by this API\'s Microsoft Entra tenant (wrong issuer).')
      case 'aud': return fail('The access token is not meant for this API (wrong audience).')
      case 'nbf': return fail('The access token is not valid yet (nbf is in the future).')
      default: return fail(`The access token's ${claimName(err.claim)} claim is invalid.`)
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return fail(`The access token's signature algorithm is not accepted (only ${ENTRA_ALGORITHMS.join(', ')}).`)
  if (err instanceof errors.JWSSignatureVerificationFailed) return fail('The access token\'s signature is invalid.')
  if (err instanceof errors.JWKSNoMatchingKey) return fail('The access token is signed with a key the tenant does not publish (unknown kid).')
  if (err instanceof errors.JWKSMultipleMatchingKeys) return fail('The access token does not say which of the tenant\'s keys signed it (no kid).')
  return fail('The access token is malformed (not a signed JWT).')
}

/** Claims only ID tokens carry: they are meant for the client that signed the user in, never for an API. */
const ID_TOKEN_CLAIMS = ['nonce', 'at_hash', 'c_hash']

/**
 * What a verified token is, by the claims Entra defines:
 * - an ID token if it carries `nonce`, `at_hash` or `c_hash` (an ID token's audience can be this API's
 *   client id, and it can carry `roles`: it must not pass for an app token);
 * - app-only if `idtyp` is "app" (the optional claim, when the API asks for it);
 * - delegated (a user's) if it carries `scp`, and `idtyp`, if present, is "user";
 * - app-only without `idtyp` if it has no `scp` and `oid` equals `sub` (for an app both are its service
 *   principal's object id; a user's `sub` is pairwise, never the oid);
 * - anything else is refused: a token with neither `scp` nor the marks of an app is not an access token
 *   this API can judge (typically an ID token without a nonce).
 */
export function tokenKind (payload: JWTPayload): 'user' | 'app' | 'id' | 'unknown' {
  if (ID_TOKEN_CLAIMS.some(claim => payload[claim] !== undefined)) return 'id'
  const idtyp = payload.idtyp
  if (idtyp === 'app') return 'app'
  if (idtyp !== undefined && idtyp !== 'user') return 'unknown'
  if (typeof payload.scp === 'string') return 'user'
  if (idtyp === 'user') return 'unknown' // a user's token without delegated permissions
  const oid = text(payload.oid)
  const sub = text(payload.sub)
  if (payload.scp === undefined && oid !== undefined && sub !== undefined && oid.toLowerCase() === sub.toLowerCase()) return 'app'
  return 'unknown'
}

function claimName (claim: string): string {
  return /^[\w.-]{1,32}$/.test(claim) ? claim : 'unknown'
}

function text (value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

function stringArray (value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []
}
