// Configuration from the environment, validated once at start-up.
// An invalid value throws a ConfigError naming the variable; server.ts turns that into exit code 1.
import { availableParallelism } from 'node:os'
import envSchema from 'env-schema'
import type { ImageDetail } from './image/tokens.ts'

export type VisionBackendName = 'azure' | 'simulated'
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface AzureConfig {
  endpoint: string
  deployment: string
  apiVersion: string
  scope: string
  tokenTimeoutMs: number
}

export interface Config {
  port: number
  host: string
  logLevel: LogLevel
  production: boolean
  graphiql: boolean
  maxUploadBytes: number
  images: {
    /** Default detail level (VISION_IMAGE_DETAIL); a request's `detail` argument overrides it. */
    detail: ImageDetail
    maxInputPixels: number
    jpegQuality: number
    concurrency: number
  }
  vision: {
    backend: VisionBackendName
    language: string
    timeoutMs: number
    maxTokens: number
    /** Present when backend is 'azure'. */
    azure: AzureConfig | null
  }
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** A BCP-47-like tag: a 2–3 letter language, then up to three subtags (script, region, variant). */
export const LANGUAGE_TAG = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$/

const MiB = 1024 * 1024

const schema = {
  type: 'object',
  properties: {
    NODE_ENV: { type: 'string', default: 'development' },
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 3000 },
    HOST: { type: 'string', minLength: 1, default: '127.0.0.1' },
    LOG_LEVEL: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    GRAPHIQL: { type: 'boolean' },
    MAX_UPLOAD_BYTES: { type: 'integer', minimum: 1024, maximum: 100 * MiB, default: 20 * MiB },
    VISION_BACKEND: { type: 'string', enum: ['azure', 'simulated'] },
    VISION_IMAGE_DETAIL: { type: 'string', enum: ['auto', 'high', 'low'], default: 'auto' },
    IMAGE_MAX_INPUT_PIXELS: { type: 'integer', minimum: 1_000_000, maximum: 500_000_000, default: 50_000_000 },
    IMAGE_JPEG_QUALITY: { type: 'integer', minimum: 30, maximum: 100, default: 85 },
    IMAGE_CONCURRENCY: { type: 'integer', minimum: 1, maximum: 64 },
    VISION_LANGUAGE: { type: 'string', pattern: LANGUAGE_TAG.source, default: 'ru' },
    VISION_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 600_000, default: 60_000 },
    VISION_MAX_TOKENS: { type: 'integer', minimum: 16, maximum: 16_384, default: 800 },
    AZURE_OPENAI_ENDPOINT: { type: 'string', pattern: '^https?://[^\\s]+$' },
    AZURE_OPENAI_DEPLOYMENT: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
    AZURE_OPENAI_API_VERSION: { type: 'string', pattern: '^(v1|\\d{4}-\\d{2}-\\d{2}(-preview)?)$', default: 'v1' },
    AZURE_OPENAI_SCOPE: { type: 'string', pattern: '^\\S+/\\.default$', default: 'https://cognitiveservices.azure.com/.default' },
    AZURE_TOKEN_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 300_000, default: 10_000 }
  }
} as const

interface RawEnv {
  NODE_ENV: string
  PORT: number
  HOST: string
  LOG_LEVEL: LogLevel
  GRAPHIQL?: boolean
  MAX_UPLOAD_BYTES: number
  VISION_BACKEND?: VisionBackendName
  VISION_IMAGE_DETAIL: ImageDetail
  IMAGE_MAX_INPUT_PIXELS: number
  IMAGE_JPEG_QUALITY: number
  IMAGE_CONCURRENCY?: number
  VISION_LANGUAGE: string
  VISION_TIMEOUT_MS: number
  VISION_MAX_TOKENS: number
  AZURE_OPENAI_ENDPOINT?: string
  AZURE_OPENAI_DEPLOYMENT?: string
  AZURE_OPENAI_API_VERSION: string
  AZURE_OPENAI_SCOPE: string
  AZURE_TOKEN_TIMEOUT_MS: number
}

// The tutorial's names, still accepted so an existing Function App's settings keep working.
const ALIASES: Record<string, string> = {
  GPT4V_ENDPOINT: 'AZURE_OPENAI_ENDPOINT',
  GPT4V_DEPLOYMENT: 'AZURE_OPENAI_DEPLOYMENT'
}

export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const data: Record<string, string> = {}
  for (const key of Object.keys(schema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') data[key] = value
  }
  for (const [alias, name] of Object.entries(ALIASES)) {
    const value = env[alias]
    if (data[name] === undefined && value !== undefined && value !== '') data[name] = value
  }

  let raw: RawEnv
  try {
    raw = envSchema<RawEnv>({ schema, data, env: false })
  } catch (err) {
    // ajv says "env/PORT must be <= 65535": keep it, it names the variable.
    throw new ConfigError(`invalid configuration: ${(err as Error).message}`)
  }

  const production = raw.NODE_ENV === 'production'
  const backend: VisionBackendName = raw.VISION_BACKEND ?? (raw.AZURE_OPENAI_ENDPOINT ? 'azure' : 'simulated')

  let azure: AzureConfig | null = null
  if (backend === 'azure') {
    if (!raw.AZURE_OPENAI_ENDPOINT) throw new ConfigError('invalid configuration: VISION_BACKEND=azure needs AZURE_OPENAI_ENDPOINT (or GPT4V_ENDPOINT)')
    if (!raw.AZURE_OPENAI_DEPLOYMENT) throw new ConfigError('invalid configuration: AZURE_OPENAI_DEPLOYMENT (or GPT4V_DEPLOYMENT) is required with an Azure endpoint')
    azure = {
      endpoint: raw.AZURE_OPENAI_ENDPOINT.replace(/\/+$/, ''),
      deployment: raw.AZURE_OPENAI_DEPLOYMENT,
      apiVersion: raw.AZURE_OPENAI_API_VERSION,
      scope: raw.AZURE_OPENAI_SCOPE,
      tokenTimeoutMs: raw.AZURE_TOKEN_TIMEOUT_MS
    }
  }

  return {
    port: raw.PORT,
    host: raw.HOST,
    logLevel: raw.LOG_LEVEL,
    production,
    graphiql: raw.GRAPHIQL ?? !production,
    maxUploadBytes: raw.MAX_UPLOAD_BYTES,
    images: {
      detail: raw.VISION_IMAGE_DETAIL,
      maxInputPixels: raw.IMAGE_MAX_INPUT_PIXELS,
      jpegQuality: raw.IMAGE_JPEG_QUALITY,
      concurrency: raw.IMAGE_CONCURRENCY ?? availableParallelism()
    },
    vision: {
      backend,
      language: raw.VISION_LANGUAGE,
      timeoutMs: raw.VISION_TIMEOUT_MS,
      maxTokens: raw.VISION_MAX_TOKENS,
      azure
    }
  }
}
