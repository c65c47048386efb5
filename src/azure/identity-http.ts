// The HTTP client the Azure credential sends its token requests with: @azure/core-rest-pipeline's
// default client, plus what managed identity lacks in @azure/identity 4.14.1 / @azure/msal-node 7.2.3:
//
// - An abort that reaches the socket. ManagedIdentityCredential.getToken() never passes the caller's
//   `abortSignal` on: it calls MSAL's `acquireToken({ resource })`, and MSAL calls the IdentityClient's
//   `sendGetRequestAsync`, which gives each request an AbortController of its own that nothing aborts
//   (node_modules/@azure/identity/dist/esm/credentials/managedIdentityCredential/index.js,
//   .../client/identityClient.js). There is no request-timeout option either, and the credential replaces
//   any `additionalPolicies` of ours with its own retry policy. What it does pass through is `httpClient`
//   (DefaultAzureCredential spreads its options into ManagedIdentityCredential, which spreads them into
//   the IdentityClient's pipeline). So this client reads the token fetch's signal from an
//   AsyncLocalStorage that CachedTokenProvider sets around `credential.getToken()`: when the fetch times
//   out, the in-flight request is destroyed (core's Node client calls `req.destroy()` on abort, which
//   closes the socket), and every later attempt of that fetch (the pipeline's retries) fails at once
//   instead of opening a new connection. Outside such a scope, a request gets a plain timeout.
// - No keep-alive. Tokens are fetched a few times a day; an idle pooled connection to the identity
//   endpoint would only stay open for nothing.
import { AsyncLocalStorage } from 'node:async_hooks'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { createDefaultHttpClient, type HttpClient, type PipelineRequest, type PipelineResponse } from '@azure/core-rest-pipeline'

/** The signal of the token fetch running in this async context (set by CachedTokenProvider). */
export const tokenFetchSignal = new AsyncLocalStorage<AbortSignal>()

const httpAgent = new HttpAgent({ keepAlive: false })
const httpsAgent = new HttpsAgent({ keepAlive: false })

export class TokenFetchAborted extends Error {
  override name = 'AbortError'
  constructor () { super('the token fetch was aborted (timed out)') }
}

/**
 * @param fallbackTimeoutMs - per-request timeout for requests made outside a token fetch's scope.
 */
export function createIdentityHttpClient (fallbackTimeoutMs: number): HttpClient {
  const inner = createDefaultHttpClient()
  return {
    async sendRequest (request: PipelineRequest): Promise<PipelineResponse> {
      if (request.agent === undefined && request.tlsSettings === undefined) {
        request.agent = request.url.startsWith('https:') ? httpsAgent : httpAgent
      }
      const fetchSignal = tokenFetchSignal.getStore()
      if (fetchSignal === undefined) {
        if (!(request.timeout > 0)) request.timeout = fallbackTimeoutMs
        return await inner.sendRequest(request)
      }
      if (fetchSignal.aborted) throw new TokenFetchAborted()
      const own = request.abortSignal
      const both = new AbortController()
      const abort = (): void => { both.abort() }
      fetchSignal.addEventListener('abort', abort, { once: true })
      own?.addEventListener('abort', abort, { once: true })
      if (own?.aborted) both.abort()
      request.abortSignal = both.signal
      try {
        return await inner.sendRequest(request)
      } finally {
        fetchSignal.removeEventListener('abort', abort)
        own?.removeEventListener('abort', abort)
      }
    }
  }
}
