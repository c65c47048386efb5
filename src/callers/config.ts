// Caller authentication's configuration: AUTH_MODE and what each mode needs (Entra ID tokens, API key hashes).
import { readFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError, readList, requireHttps } from '../config-support.ts'
import { API_KEY_NAME, type ApiKeyEntry } from './api-keys.ts'
import { ROLE_BY_ENTRA_NAME, type Role } from './caller.ts'

export const CallersEnv = Type.Object({
  AUTH_MODE: Type.String({ pattern: '^(none|entra|apikey|entra,apikey|apikey,entra)$', default: 'none' }),
  /** AUTH_MODE=none is refused in production unless this accepts it. */
  ALLOW_ANONYMOUS: Type.Boolean({ default: false }),
  ENTRA_TENANT_ID: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F-]{36}$|^[A-Za-z0-9.-]+$' })),
  ENTRA_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  ENTRA_REQUIRED_ROLES: Type.String({ default: 'VehicleIdentification.Identify' }),
  ENTRA_JWKS_URI: Type.Optional(Type.String({ pattern: '^https?://' })),
  ENTRA_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
  ENTRA_JWKS_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 5_000 }),
  API_KEY_HASHES: Type.Optional(Type.String()),
  API_KEY_HASHES_FILE: Type.Optional(Type.String({ minLength: 1 }))
})
export type CallersEnv = Static<typeof CallersEnv>

export type CallerAuthMode = 'entra' | 'apikey'

export interface EntraConfig {
  tenantId: string
  /** Accepted `aud` values: the API's client id and/or App ID URI. */
  audiences: string[]
  /** A caller needs one of these, as an app role (`roles`) or a delegated scope (`scp`). */
  requiredRoles: string[]
  /** Overrides discovery (sovereign clouds, tests). */
  jwksUri: string
  /** Accepted `iss` values (v1 and v2 issuers of the tenant unless ENTRA_ISSUER is set). */
  issuers: string[]
  jwksTimeoutMs: number
}

export interface CallersConfig {
  /** Empty: anonymous. */
  modes: CallerAuthMode[]
  entra: EntraConfig | null
  apiKeys: ApiKeyEntry[]
}

/** `name:sha256hex` or `sha256hex`, the name as `npm run apikey:new` accepts it. */
const API_KEY_ENTRY = new RegExp(`^(?:(${API_KEY_NAME.source.slice(1, -1)}):)?([0-9a-fA-F]{64})(?::([\\w.+]+))?$`)

export function readCallersConfig (raw: CallersEnv, production: boolean): CallersConfig {
  requireHttps('ENTRA_JWKS_URI', raw.ENTRA_JWKS_URI) // plain http would let anyone on the path swap the keys
  const modes = raw.AUTH_MODE === 'none' ? [] : raw.AUTH_MODE.split(',') as CallerAuthMode[]
  if (modes.length === 0 && production && !raw.ALLOW_ANONYMOUS) {
    throw new ConfigError('invalid configuration: AUTH_MODE=none with NODE_ENV=production lets anyone spend the deployment\'s quota; ' +
      'set AUTH_MODE (entra, apikey) or ALLOW_ANONYMOUS=true to accept that explicitly')
  }
  const apiKeys = modes.includes('apikey') ? readApiKeys(raw) : []
  if (modes.includes('apikey') && apiKeys.length === 0) {
    throw new ConfigError('invalid configuration: AUTH_MODE includes apikey but neither API_KEY_HASHES nor API_KEY_HASHES_FILE lists a key hash')
  }
  return {
    modes,
    entra: modes.includes('entra') ? readEntra(raw) : null,
    apiKeys
  }
}

function readEntra (raw: CallersEnv): EntraConfig {
  const tenantId = raw.ENTRA_TENANT_ID
  if (!tenantId) throw new ConfigError('invalid configuration: AUTH_MODE=entra needs ENTRA_TENANT_ID')
  if (!raw.ENTRA_AUDIENCE) throw new ConfigError('invalid configuration: AUTH_MODE=entra needs ENTRA_AUDIENCE (the API\'s client id or App ID URI)')
  const requiredRoles = readList(raw.ENTRA_REQUIRED_ROLES)
  if (requiredRoles.length === 0) throw new ConfigError('invalid configuration: ENTRA_REQUIRED_ROLES is empty')
  return {
    tenantId,
    audiences: readList(raw.ENTRA_AUDIENCE),
    requiredRoles,
    jwksUri: raw.ENTRA_JWKS_URI ?? `https://login.microsoftonline.com/${tenantId}/discovery/v2.0/keys`,
    issuers: raw.ENTRA_ISSUER
      ? readList(raw.ENTRA_ISSUER)
      : [`https://login.microsoftonline.com/${tenantId}/v2.0`, `https://sts.windows.net/${tenantId}/`],
    jwksTimeoutMs: raw.ENTRA_JWKS_TIMEOUT_MS
  }
}

/** An API key's roles, by their Entra app role names; none given: Identify, as before roles existed. */
function readKeyRoles (value: string | undefined, id: string): Role[] {
  if (value === undefined) return ['Identify']
  return value.split('+').map(name => {
    const role = ROLE_BY_ENTRA_NAME.get(name)
    if (role === undefined) {
      throw new ConfigError(`invalid configuration: API_KEY_HASHES entry "${id}" names an unknown role "${name.slice(0, 64)}" ` +
        `(known: ${[...ROLE_BY_ENTRA_NAME.keys()].join(', ')})`)
    }
    return role
  })
}

/**
 * `API_KEY_HASHES` and/or the file `API_KEY_HASHES_FILE`, comma- or line-separated entries: a SHA-256 hex hash,
 * optionally `name:hash`, optionally followed by `:roles`, the roles joined by `+` and named as Entra's app roles
 * (`dashboard:HASH:VehicleIdentification.Identify+VehicleIdentification.ReadAll`). Without roles: Identify only.
 */
function readApiKeys (raw: CallersEnv): ApiKeyEntry[] {
  let text = raw.API_KEY_HASHES ?? ''
  if (raw.API_KEY_HASHES_FILE) {
    try {
      text += '\n' + readFileSync(raw.API_KEY_HASHES_FILE, 'utf8')
    } catch (err) {
      throw new ConfigError(`invalid configuration: API_KEY_HASHES_FILE cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  const entries: ApiKeyEntry[] = []
  // Comments first (a comment may hold a comma), then the comma- or line-separated entries.
  for (const item of text.split('\n').flatMap(line => line.replace(/#.*/, '').split(',')).map(entry => entry.trim())) {
    if (item === '') continue
    const match = API_KEY_ENTRY.exec(item)
    if (!match) {
      throw new ConfigError('invalid configuration: API_KEY_HASHES entries must be 64 hex digits (a SHA-256), optionally prefixed by "name:" ' +
        'and followed by ":roles"')
    }
    const hash = (match[2] as string).toLowerCase()
    const id = match[1] ?? hash.slice(0, 12)
    entries.push({ id, sha256: Buffer.from(hash, 'hex'), roles: readKeyRoles(match[3], id) })
  }
  return entries
}
