// Credentials in a URL's query string: recognised (by name or by shape) so the request can be refused.
import { looksLikeCredential } from '../logger.ts'

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
