// AZURE_OPENAI_BACKENDS (or the file AZURE_OPENAI_BACKENDS_FILE): several Azure OpenAI deployments of the
// same model, in several resources or regions, as a JSON list:
//
//   [{ "name": "ptu-westeurope", "endpoint": "https://…", "deployment": "gpt-4o", "priority": 0 },
//    { "name": "paygo-swedencentral", "endpoint": "https://…", "deployment": "gpt-4o", "priority": 1, "weight": 2 }]
//
// Checked once at start-up like every other variable: a typo stops the service with a message naming the entry.
import { readFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { ConfigError, requireHttps } from '../config-support.ts'
import { API_VERSION_PATTERN, checkApiVersion } from './api-version.ts'

export const MAX_BACKENDS = 16

const BackendEntry = Type.Object({
  name: Type.String({ pattern: '^[A-Za-z0-9._-]{1,40}$' }),
  endpoint: Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 300 }),
  deployment: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' }),
  apiVersion: Type.Optional(Type.String({ pattern: API_VERSION_PATTERN })),
  /** Lower first: 0 is tried before 1. */
  priority: Type.Integer({ minimum: 0, maximum: 1000 }),
  /** Share of the traffic among backends of the same priority (default 1). */
  weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 }))
}, { additionalProperties: false })

export interface AzureBackendConfig {
  /** Shown in `Identification.backendName`, metrics and logs. */
  name: string
  /** https://RESOURCE.openai.azure.com, without a trailing slash. */
  endpoint: string
  deployment: string
  apiVersion: string
  priority: number
  weight: number
}

interface BackendListEnv {
  AZURE_OPENAI_BACKENDS?: string
  AZURE_OPENAI_BACKENDS_FILE?: string
  /** The default of each entry's apiVersion. */
  AZURE_OPENAI_API_VERSION: string
}

/** The list, or null when neither variable is set. */
export function readBackendList (raw: BackendListEnv): AzureBackendConfig[] | null {
  if (raw.AZURE_OPENAI_BACKENDS !== undefined && raw.AZURE_OPENAI_BACKENDS_FILE !== undefined) {
    throw new ConfigError('invalid configuration: set AZURE_OPENAI_BACKENDS or AZURE_OPENAI_BACKENDS_FILE, not both')
  }
  let source = 'AZURE_OPENAI_BACKENDS'
  let text = raw.AZURE_OPENAI_BACKENDS
  if (raw.AZURE_OPENAI_BACKENDS_FILE !== undefined) {
    source = 'AZURE_OPENAI_BACKENDS_FILE'
    try {
      text = readFileSync(raw.AZURE_OPENAI_BACKENDS_FILE, 'utf8')
    } catch (err) {
      throw new ConfigError(`invalid configuration: AZURE_OPENAI_BACKENDS_FILE cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  if (text === undefined) return null

  let list: unknown
  try {
    list = JSON.parse(text)
  } catch {
    throw new ConfigError(`invalid configuration: ${source} is not JSON (expected a list of { name, endpoint, deployment, priority })`)
  }
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_BACKENDS) {
    throw new ConfigError(`invalid configuration: ${source} must be a JSON list of 1 to ${MAX_BACKENDS} backends`)
  }
  const backends = list.map((entry: unknown, index): AzureBackendConfig => {
    const where = `${source}[${index}]`
    if (!Value.Check(BackendEntry, entry)) {
      const first = Value.Errors(BackendEntry, entry).First()
      const at = first?.path === undefined || first.path === '' ? '' : ` at ${first.path}`
      throw new ConfigError(`invalid configuration: ${where}${at}: ${first?.message ?? 'not a backend'} ` +
        '(expected { name, endpoint, deployment, priority, apiVersion?, weight? })')
    }
    const valid = entry as Static<typeof BackendEntry>
    requireHttps(`${where}.endpoint`, valid.endpoint)
    const apiVersion = valid.apiVersion ?? raw.AZURE_OPENAI_API_VERSION
    checkApiVersion(`${where}.apiVersion`, apiVersion)
    return {
      name: valid.name,
      endpoint: valid.endpoint.replace(/\/+$/, ''),
      deployment: valid.deployment,
      apiVersion,
      priority: valid.priority,
      weight: valid.weight ?? 1
    }
  })
  const seen = new Set<string>()
  const deployments = new Set<string>()
  for (const backend of backends) {
    if (seen.has(backend.name)) throw new ConfigError(`invalid configuration: ${source} names "${backend.name}" twice (names must be unique)`)
    seen.add(backend.name)
    const key = `${backend.endpoint.toLowerCase()}/${backend.deployment}`
    if (deployments.has(key)) throw new ConfigError(`invalid configuration: ${source} lists ${backend.deployment} at ${backend.endpoint} twice`)
    deployments.add(key)
  }
  return backends
}
