// The field app (web/): whether the service serves it at /, and the Entra ID sign-in it offers (a single-page
// application registration of its own; MSAL in the browser, authorization code with PKCE). Nothing here is secret:
// it is handed to every browser by GET /app-config.json.
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError, requireHttps } from '../config-support.ts'

export const WebAppEnv = Type.Object({
  WEB_APP: Type.Boolean({ default: true }),
  /** The SPA registration's client id (application id). */
  WEB_APP_ENTRA_CLIENT_ID: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F-]{36}$' })),
  /** The API's delegated scopes the app asks for, space- or comma-separated, e.g. api://agrivision/Identify. */
  WEB_APP_ENTRA_SCOPES: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
  /** Default: https://login.microsoftonline.com/<ENTRA_TENANT_ID>. */
  WEB_APP_ENTRA_AUTHORITY: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' }))
})
export type WebAppEnv = Static<typeof WebAppEnv>

export interface WebAppConfig {
  enabled: boolean
  entra: { clientId: string, authority: string, scopes: string[] } | null
}

export function readWebAppConfig (raw: WebAppEnv & { ENTRA_TENANT_ID?: string | undefined }): WebAppConfig {
  requireHttps('WEB_APP_ENTRA_AUTHORITY', raw.WEB_APP_ENTRA_AUTHORITY)
  const clientId = raw.WEB_APP_ENTRA_CLIENT_ID
  if (clientId === undefined) {
    if (raw.WEB_APP_ENTRA_SCOPES !== undefined) throw new ConfigError('invalid configuration: WEB_APP_ENTRA_SCOPES needs WEB_APP_ENTRA_CLIENT_ID')
    return { enabled: raw.WEB_APP, entra: null }
  }
  const scopes = (raw.WEB_APP_ENTRA_SCOPES ?? '').split(/[\s,]+/).filter(Boolean)
  if (scopes.length === 0) throw new ConfigError('invalid configuration: WEB_APP_ENTRA_CLIENT_ID needs WEB_APP_ENTRA_SCOPES (the API scope the app asks for)')
  const authority = raw.WEB_APP_ENTRA_AUTHORITY ?? (raw.ENTRA_TENANT_ID ? `https://login.microsoftonline.com/${raw.ENTRA_TENANT_ID}` : undefined)
  if (authority === undefined) throw new ConfigError('invalid configuration: WEB_APP_ENTRA_CLIENT_ID needs ENTRA_TENANT_ID or WEB_APP_ENTRA_AUTHORITY')
  return { enabled: raw.WEB_APP, entra: { clientId, authority: authority.replace(/\/+$/, ''), scopes } }
}
