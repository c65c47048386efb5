// The process's one Azure credential and its one cached token provider, built at start-up.
import { DefaultAzureCredential } from '@azure/identity'
import type { FastifyBaseLogger } from 'fastify'
import type { AzureConfig } from './config.ts'
import { createIdentityHttpClient } from './identity-http.ts'
import { CachedTokenProvider } from './token-provider.ts'

export function createTokenProvider (
  azure: AzureConfig, log: FastifyBaseLogger, env: NodeJS.ProcessEnv = process.env
): CachedTokenProvider {
  // DefaultAzureCredential honours AZURE_CLIENT_ID (user-assigned identity) and AZURE_TOKEN_CREDENTIALS
  // (pin the chain: `prod`, or one credential such as ManagedIdentityCredential). Never an API key.
  // Its HTTP client makes the provider's timeout close the token request's socket (see identity-http.ts).
  const credential = new DefaultAzureCredential({ httpClient: createIdentityHttpClient(azure.tokenTimeoutMs) })
  const pinned = env.AZURE_TOKEN_CREDENTIALS
  return new CachedTokenProvider({
    credential,
    credentialName: pinned ? `DefaultAzureCredential (AZURE_TOKEN_CREDENTIALS=${pinned})` : 'DefaultAzureCredential',
    scope: azure.scope,
    timeoutMs: azure.tokenTimeoutMs,
    log
  })
}
