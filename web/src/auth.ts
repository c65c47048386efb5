// Who the phone is: an API key (kept in sessionStorage: gone when the tab closes), a Microsoft Entra ID sign-in
// (MSAL, authorization code with PKCE, loaded only when used), or nobody when the service takes anonymous callers.
import { ANONYMOUS_OWNER, apiKeyOwner, entraOwner } from './owner.ts'

export interface AppConfig {
  auth: {
    /** The service takes callers without credentials (AUTH_MODE=none). */
    anonymous: boolean
    apiKey: boolean
    entra: { clientId: string, authority: string, scopes: string[] } | null
  }
}

export interface Credentials {
  kind: 'anonymous' | 'apikey' | 'entra'
  /** Shown in the header (never the key itself). */
  label: string
  /** Who this is, as stored with each queued photo (owner.ts): stable across sign-ins, never a secret. */
  owner: string
  headers (): Promise<Record<string, string>>
  /** graphql-ws connection_init payload: the same credentials, as a browser WebSocket cannot send headers. */
  connectionParams (): Promise<Record<string, string>>
  signOut (): Promise<void>
}

const KEY_STORAGE = 'agrivision.apiKey'

export const anonymous: Credentials = {
  kind: 'anonymous',
  label: '',
  owner: ANONYMOUS_OWNER,
  headers: async () => ({}),
  connectionParams: async () => ({}),
  signOut: async () => {}
}

export async function apiKeyCredentials (key: string): Promise<Credentials> {
  const owner = await apiKeyOwner(key)
  sessionStorage.setItem(KEY_STORAGE, key)
  return {
    kind: 'apikey',
    label: `${key.slice(0, 8)}…`,
    owner,
    headers: async () => ({ 'x-api-key': key }),
    connectionParams: async () => ({ 'x-api-key': key }),
    signOut: async () => { sessionStorage.removeItem(KEY_STORAGE) }
  }
}

export async function savedApiKey (): Promise<Credentials | null> {
  const key = sessionStorage.getItem(KEY_STORAGE)
  return key ? await apiKeyCredentials(key) : null
}

type Msal = import('@azure/msal-browser').IPublicClientApplication

let msal: Promise<Msal> | undefined

async function loadMsal (entra: NonNullable<AppConfig['auth']['entra']>): Promise<Msal> {
  msal ??= (async () => {
    const { createStandardPublicClientApplication } = await import('@azure/msal-browser')
    const app = await createStandardPublicClientApplication({
      auth: { clientId: entra.clientId, authority: entra.authority, redirectUri: `${location.origin}/` },
      cache: { cacheLocation: 'sessionStorage' }
    })
    await app.handleRedirectPromise()
    return app
  })()
  return await msal
}

/** The signed-in Entra account after a redirect, if any; null when there is none (or Entra is not configured). */
export async function entraCredentials (config: AppConfig): Promise<Credentials | null> {
  const entra = config.auth.entra
  if (entra === null || !sessionStorage.getItem('agrivision.entra')) return null
  const app = await loadMsal(entra)
  const account = app.getAllAccounts()[0]
  if (account === undefined) return null
  const token = async (): Promise<string> => {
    try {
      return (await app.acquireTokenSilent({ account, scopes: entra.scopes })).accessToken
    } catch {
      await app.acquireTokenRedirect({ account, scopes: entra.scopes })
      throw new Error('redirecting to sign in')
    }
  }
  return {
    kind: 'entra',
    label: account.username,
    owner: entraOwner(account.homeAccountId),
    headers: async () => ({ authorization: `Bearer ${await token()}` }),
    connectionParams: async () => ({ authorization: `Bearer ${await token()}` }),
    signOut: async () => {
      sessionStorage.removeItem('agrivision.entra')
      await app.logoutRedirect({ account })
    }
  }
}

export async function signInWithEntra (config: AppConfig): Promise<void> {
  const entra = config.auth.entra
  if (entra === null) return
  sessionStorage.setItem('agrivision.entra', '1')
  const app = await loadMsal(entra)
  await app.loginRedirect({ scopes: entra.scopes })
}
