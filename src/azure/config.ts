// The Azure OpenAI deployments the azure vision backend calls, and the managed identity's token for them.
// One deployment (AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_DEPLOYMENT) or several (AZURE_OPENAI_BACKENDS,
// src/azure/backends.ts): either way the rest of the service sees a list of backends.
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError, requireHttps } from '../config-support.ts'
import { API_VERSION_PATTERN, checkApiVersion } from './api-version.ts'
import { readBackendList, type AzureBackendConfig } from './backends.ts'

export type { AzureBackendConfig }

export const AzureEnv = Type.Object({
  AZURE_OPENAI_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' })),
  AZURE_OPENAI_DEPLOYMENT: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' })),
  AZURE_OPENAI_API_VERSION: Type.String({ pattern: API_VERSION_PATTERN, default: 'v1' }),
  /** A JSON list of deployments (see backends.ts); replaces AZURE_OPENAI_ENDPOINT/DEPLOYMENT. */
  AZURE_OPENAI_BACKENDS: Type.Optional(Type.String({ minLength: 2, maxLength: 65_536 })),
  /** The same list in a file (a mounted ConfigMap or secret volume). */
  AZURE_OPENAI_BACKENDS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  AZURE_OPENAI_SCOPE: Type.String({ pattern: '^\\S+/\\.default$', default: 'https://cognitiveservices.azure.com/.default' }),
  AZURE_TOKEN_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 300_000, default: 10_000 })
})
export type AzureEnv = Static<typeof AzureEnv>

/** The tutorial's names, still accepted (when the new name is unset) so an existing Function App's settings keep working. */
export const AZURE_ENV_ALIASES = {
  GPT4V_ENDPOINT: 'AZURE_OPENAI_ENDPOINT',
  GPT4V_DEPLOYMENT: 'AZURE_OPENAI_DEPLOYMENT'
} as const satisfies Record<string, keyof AzureEnv>

/** The name a single deployment (AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_DEPLOYMENT) gets as a list of one. */
export const SINGLE_BACKEND_NAME = 'default'

export interface AzureConfig {
  /** At least one; names unique. */
  backends: AzureBackendConfig[]
  /** One scope, one credential, one cached token for every backend. */
  scope: string
  tokenTimeoutMs: number
}

/** The managed identity's settings, whoever takes a token from it (Azure OpenAI, PostgreSQL, Redis). */
export interface AzureIdentityConfig {
  /** One token fetch's timeout (AZURE_TOKEN_TIMEOUT_MS). */
  tokenTimeoutMs: number
}

export function readAzureIdentityConfig (raw: AzureEnv): AzureIdentityConfig {
  return { tokenTimeoutMs: raw.AZURE_TOKEN_TIMEOUT_MS }
}

/**
 * The deployments when the azure backend is used (`used`), else null. Endpoints must be https
 * either way: they receive the managed identity's token.
 */
export function readAzureConfig (raw: AzureEnv, used: boolean): AzureConfig | null {
  requireHttps('AZURE_OPENAI_ENDPOINT', raw.AZURE_OPENAI_ENDPOINT)
  checkApiVersion('AZURE_OPENAI_API_VERSION', raw.AZURE_OPENAI_API_VERSION)
  const listed = readBackendList(raw)
  if (listed !== null && (raw.AZURE_OPENAI_ENDPOINT !== undefined || raw.AZURE_OPENAI_DEPLOYMENT !== undefined)) {
    throw new ConfigError('invalid configuration: set either AZURE_OPENAI_BACKENDS(_FILE) or AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT, not both')
  }
  if (!used) return null
  const tokens = { scope: raw.AZURE_OPENAI_SCOPE, tokenTimeoutMs: raw.AZURE_TOKEN_TIMEOUT_MS }
  if (listed !== null) return { backends: listed, ...tokens }
  if (!raw.AZURE_OPENAI_ENDPOINT) {
    throw new ConfigError('invalid configuration: VISION_BACKEND=azure needs AZURE_OPENAI_ENDPOINT (or GPT4V_ENDPOINT) or AZURE_OPENAI_BACKENDS')
  }
  if (!raw.AZURE_OPENAI_DEPLOYMENT) throw new ConfigError('invalid configuration: AZURE_OPENAI_DEPLOYMENT (or GPT4V_DEPLOYMENT) is required with an Azure endpoint')
  return {
    backends: [{
      name: SINGLE_BACKEND_NAME,
      endpoint: raw.AZURE_OPENAI_ENDPOINT.replace(/\/+$/, ''),
      deployment: raw.AZURE_OPENAI_DEPLOYMENT,
      apiVersion: raw.AZURE_OPENAI_API_VERSION,
      priority: 0,
      weight: 1
    }],
    ...tokens
  }
}
