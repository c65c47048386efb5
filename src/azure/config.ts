// The Azure OpenAI deployment the azure vision backend calls, and the managed identity's token for it.
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError, requireHttps } from '../config-support.ts'

export const AzureEnv = Type.Object({
  AZURE_OPENAI_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' })),
  AZURE_OPENAI_DEPLOYMENT: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' })),
  AZURE_OPENAI_API_VERSION: Type.String({ pattern: '^(v1|\\d{4}-\\d{2}-\\d{2}(-preview)?)$', default: 'v1' }),
  AZURE_OPENAI_SCOPE: Type.String({ pattern: '^\\S+/\\.default$', default: 'https://cognitiveservices.azure.com/.default' }),
  AZURE_TOKEN_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 300_000, default: 10_000 })
})
export type AzureEnv = Static<typeof AzureEnv>

/** The tutorial's names, still accepted (when the new name is unset) so an existing Function App's settings keep working. */
export const AZURE_ENV_ALIASES = {
  GPT4V_ENDPOINT: 'AZURE_OPENAI_ENDPOINT',
  GPT4V_DEPLOYMENT: 'AZURE_OPENAI_DEPLOYMENT'
} as const satisfies Record<string, keyof AzureEnv>

/** The first dated API version with structured outputs (`response_format` of type `json_schema`) that is GA; `v1` has them too. */
export const MIN_DATED_API_VERSION = '2024-10-21'

export interface AzureConfig {
  endpoint: string
  deployment: string
  apiVersion: string
  scope: string
  tokenTimeoutMs: number
}

/**
 * The deployment when the azure backend is used (`used`), else null. The endpoint must be https
 * either way: it receives the managed identity's token.
 */
export function readAzureConfig (raw: AzureEnv, used: boolean): AzureConfig | null {
  requireHttps('AZURE_OPENAI_ENDPOINT', raw.AZURE_OPENAI_ENDPOINT)
  const apiVersion = raw.AZURE_OPENAI_API_VERSION
  // Dated versions compare as strings: YYYY-MM-DD, a `-preview` suffix after the date.
  if (apiVersion !== 'v1' && apiVersion.slice(0, 10) < MIN_DATED_API_VERSION) {
    throw new ConfigError(`invalid configuration: AZURE_OPENAI_API_VERSION=${apiVersion} has no structured outputs (json_schema); ` +
      `use v1 (the default) or a dated version from ${MIN_DATED_API_VERSION}`)
  }
  if (!used) return null
  if (!raw.AZURE_OPENAI_ENDPOINT) throw new ConfigError('invalid configuration: VISION_BACKEND=azure needs AZURE_OPENAI_ENDPOINT (or GPT4V_ENDPOINT)')
  if (!raw.AZURE_OPENAI_DEPLOYMENT) throw new ConfigError('invalid configuration: AZURE_OPENAI_DEPLOYMENT (or GPT4V_DEPLOYMENT) is required with an Azure endpoint')
  return {
    endpoint: raw.AZURE_OPENAI_ENDPOINT.replace(/\/+$/, ''),
    deployment: raw.AZURE_OPENAI_DEPLOYMENT,
    apiVersion: raw.AZURE_OPENAI_API_VERSION,
    scope: raw.AZURE_OPENAI_SCOPE,
    tokenTimeoutMs: raw.AZURE_TOKEN_TIMEOUT_MS
  }
}
