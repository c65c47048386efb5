// The process's one Azure credential and its cached tokens, one per scope (tokens.ts), built at start-up.
import { DefaultAzureCredential } from '@azure/identity'
import type { FastifyBaseLogger } from 'fastify'
import { createIdentityHttpClient } from './identity-http.ts'
import { AzureTokens } from './tokens.ts'

export function createAzureTokens (
  { tokenTimeoutMs }: { tokenTimeoutMs: number }, log: FastifyBaseLogger, env: NodeJS.ProcessEnv = process.env
): AzureTokens {
  // DefaultAzureCredential honours AZURE_CLIENT_ID (user-assigned identity) and AZURE_TOKEN_CREDENTIALS
  // (pin the chain: `prod`, or one credential such as ManagedIdentityCredential). Never an API key.
  // Its HTTP client makes the provider's timeout close the token request's socket (see identity-http.ts).
  const credential = new DefaultAzureCredential({ httpClient: createIdentityHttpClient(tokenTimeoutMs) })
  const pinned = env.AZURE_TOKEN_CREDENTIALS
  return new AzureTokens({
    credential,
    credentialName: pinned ? `DefaultAzureCredential (AZURE_TOKEN_CREDENTIALS=${pinned})` : 'DefaultAzureCredential',
    timeoutMs: tokenTimeoutMs,
    log
  })
}
