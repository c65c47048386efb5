// Configuration from the environment, validated once at start-up.
// An invalid value throws a ConfigError naming the variable; server.ts turns that into exit code 1.
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import envSchema from 'env-schema'
import type { ImageDetail } from './image/tokens.ts'
import { API_KEY_NAME, type ApiKeyEntry } from './callers/api-keys.ts'

/** `name:sha256hex` or `sha256hex`, the name as `npm run apikey:new` accepts it. */
const API_KEY_ENTRY = new RegExp(`^(?:(${API_KEY_NAME.source.slice(1, -1)}):)?([0-9a-fA-F]{64})$`)

export type VisionBackendName = 'azure' | 'simulated'
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface AzureConfig {
  endpoint: string
  deployment: string
  apiVersion: string
  scope: string
  tokenTimeoutMs: number
}

export type CallerAuthMode = 'entra' | 'apikey'

export interface EntraConfig {
  tenantId: string
  /** Accepted `aud` values: the API's client id and/or App ID URI. */
  audiences: string[]
  /** A caller needs one of these, as an app role (`roles`) or a delegated scope (`scp`). */
  requiredRoles: string[]
  /** Overrides discovery (sovereign clouds, tests). */
  jwksUri: string
  /** Accepted `iss` values (v1 and v2 issuers of the tenant unless ENTRA_ISSUER is set). */
  issuers: string[]
  jwksTimeoutMs: number
}


export interface Config {
  port: number
  host: string
  logLevel: LogLevel
  production: boolean
  graphiql: boolean
  maxUploadBytes: number
  /** Whole-request receive timeout (slow uploads are cut off after this). */
  requestTimeoutMs: number
  /** An upload whose body makes no progress for this long is refused and its slot freed. */
  uploadIdleTimeoutMs: number
  /** How long SIGTERM waits for in-flight requests. */
  shutdownGraceMs: number
  /** Fastify's trustProxy: which proxies' X-Forwarded-For give the client address (a hop count, or their addresses/CIDRs). */
  trustProxy: boolean | number | string
  auth: {
    /** Empty: anonymous. */
    modes: CallerAuthMode[]
    entra: EntraConfig | null
    apiKeys: ApiKeyEntry[]
  }
  limits: {
    /** Identifications per caller per minute; 0: no limit. */
    ratePerMinute: number
    /** Other GraphQL operations per caller per minute; 0: no limit. */
    operationsPerMinute: number
    redisUrl: string | null
    introspection: boolean
    maxQueryDepth: number
    /** Fields per operation, aliases and expanded fragments included. */
    maxQueryFields: number
    /** graphql-js parser's token limit: bounds the parse and the parsed document's memory. */
    maxQueryTokens: number
    /** Largest JSON body (a GraphQL operation without a file). */
    maxBodyBytes: number
    /** `true`: any origin; else the list (empty: no cross-origin access). */
    corsOrigins: true | string[]
  }
  overload: {
    maxConcurrency: number
    /** Slots (held or waited for) per caller, so one caller cannot take them all. */
    maxConcurrencyPerCaller: number
    queueSize: number
    queueTimeoutMs: number
    maxEventLoopDelayMs: number
    maxHeapUsedBytes: number
    maxRssBytes: number
  }
  metricsToken: string | null
  images: {
    /** Default detail level (VISION_IMAGE_DETAIL); a request's `detail` argument overrides it. */
    detail: ImageDetail
    maxInputPixels: number
    /** Longest side accepted (IMAGE_MAX_SIDE). */
    maxSide: number
    /** Long side ÷ short side accepted (IMAGE_MAX_ASPECT_RATIO). */
    maxAspectRatio: number
    /** Bytes one image's decoding may produce or hold, estimated from its header (IMAGE_MAX_DECODE_BYTES). */
    maxDecodeBytes: number
    /** Decode memory for all images at once (IMAGE_MEMORY_BUDGET_BYTES): sizes the default concurrency. */
    memoryBudgetBytes: number
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
    IMAGE_MAX_SIDE: { type: 'integer', minimum: 2048, maximum: 65_535, default: 12_000 },
    IMAGE_MAX_ASPECT_RATIO: { type: 'number', minimum: 1, maximum: 1000, default: 20 },
    IMAGE_MAX_DECODE_BYTES: { type: 'integer', minimum: 8 * MiB, maximum: 4096 * MiB, default: 48 * MiB },
    IMAGE_MEMORY_BUDGET_BYTES: { type: 'integer', minimum: 8 * MiB, maximum: 65_536 * MiB, default: 96 * MiB },
    IMAGE_JPEG_QUALITY: { type: 'integer', minimum: 30, maximum: 100, default: 85 },
    IMAGE_CONCURRENCY: { type: 'integer', minimum: 1, maximum: 64 },
    VISION_LANGUAGE: { type: 'string', pattern: LANGUAGE_TAG.source, default: 'ru' },
    VISION_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 600_000, default: 60_000 },
    VISION_MAX_TOKENS: { type: 'integer', minimum: 16, maximum: 16_384, default: 800 },
    AZURE_OPENAI_ENDPOINT: { type: 'string', pattern: '^https?://[^\\s]+$' },
    AZURE_OPENAI_DEPLOYMENT: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
    AZURE_OPENAI_API_VERSION: { type: 'string', pattern: '^(v1|\\d{4}-\\d{2}-\\d{2}(-preview)?)$', default: 'v1' },
    AZURE_OPENAI_SCOPE: { type: 'string', pattern: '^\\S+/\\.default$', default: 'https://cognitiveservices.azure.com/.default' },
    AZURE_TOKEN_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 300_000, default: 10_000 },
    REQUEST_TIMEOUT_MS: { type: 'integer', minimum: 1000, maximum: 3_600_000, default: 120_000 },
    UPLOAD_IDLE_TIMEOUT_MS: { type: 'integer', minimum: 500, maximum: 600_000, default: 10_000 },
    SHUTDOWN_GRACE_MS: { type: 'integer', minimum: 0, maximum: 600_000, default: 25_000 },
    TRUST_PROXY: { type: 'string', pattern: '^(true|false|[0-9a-fA-F.:/, ]+)$', default: 'false' },
    AUTH_MODE: { type: 'string', pattern: '^(none|entra|apikey|entra,apikey|apikey,entra)$', default: 'none' },
    ALLOW_ANONYMOUS: { type: 'boolean', default: false },
    ENTRA_TENANT_ID: { type: 'string', pattern: '^[0-9a-fA-F-]{36}$|^[A-Za-z0-9.-]+$' },
    ENTRA_AUDIENCE: { type: 'string', minLength: 1 },
    ENTRA_REQUIRED_ROLES: { type: 'string', default: 'VehicleIdentification.Identify' },
    ENTRA_JWKS_URI: { type: 'string', pattern: '^https?://' },
    ENTRA_ISSUER: { type: 'string', minLength: 1 },
    ENTRA_JWKS_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 60_000, default: 5_000 },
    API_KEY_HASHES: { type: 'string' },
    API_KEY_HASHES_FILE: { type: 'string', minLength: 1 },
    RATE_LIMIT_PER_MINUTE: { type: 'integer', minimum: 0, maximum: 100_000, default: 30 },
    GRAPHQL_RATE_LIMIT_PER_MINUTE: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 600 },
    REDIS_URL: { type: 'string', pattern: '^rediss?://' },
    GRAPHQL_INTROSPECTION: { type: 'boolean' },
    GRAPHQL_MAX_DEPTH: { type: 'integer', minimum: 8, maximum: 100, default: 15 },
    GRAPHQL_MAX_FIELDS: { type: 'integer', minimum: 50, maximum: 100_000, default: 500 },
    GRAPHQL_MAX_TOKENS: { type: 'integer', minimum: 500, maximum: 100_000, default: 2_000 },
    GRAPHQL_MAX_BODY_BYTES: { type: 'integer', minimum: 1024, maximum: 10 * MiB, default: 100 * 1024 },
    CORS_ORIGINS: { type: 'string' },
    VISION_MAX_CONCURRENCY: { type: 'integer', minimum: 1, maximum: 1024, default: 16 },
    VISION_MAX_CONCURRENCY_PER_CALLER: { type: 'integer', minimum: 1, maximum: 1024, default: 4 },
    VISION_QUEUE_SIZE: { type: 'integer', minimum: 0, maximum: 10_000, default: 64 },
    VISION_QUEUE_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 600_000, default: 30_000 },
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: { type: 'integer', minimum: 0, default: 1_000 },
    PRESSURE_MAX_HEAP_USED_BYTES: { type: 'integer', minimum: 0, default: 0 },
    PRESSURE_MAX_RSS_BYTES: { type: 'integer', minimum: 0, default: 0 },
    METRICS_TOKEN: { type: 'string', minLength: 16 }
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
  IMAGE_MAX_SIDE: number
  IMAGE_MAX_ASPECT_RATIO: number
  IMAGE_MAX_DECODE_BYTES: number
  IMAGE_MEMORY_BUDGET_BYTES: number
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
  REQUEST_TIMEOUT_MS: number
  UPLOAD_IDLE_TIMEOUT_MS: number
  SHUTDOWN_GRACE_MS: number
  TRUST_PROXY: string
  AUTH_MODE: string
  ALLOW_ANONYMOUS: boolean
  ENTRA_TENANT_ID?: string
  ENTRA_AUDIENCE?: string
  ENTRA_REQUIRED_ROLES: string
  ENTRA_JWKS_URI?: string
  ENTRA_ISSUER?: string
  ENTRA_JWKS_TIMEOUT_MS: number
  API_KEY_HASHES?: string
  API_KEY_HASHES_FILE?: string
  RATE_LIMIT_PER_MINUTE: number
  GRAPHQL_RATE_LIMIT_PER_MINUTE: number
  REDIS_URL?: string
  GRAPHQL_INTROSPECTION?: boolean
  GRAPHQL_MAX_DEPTH: number
  GRAPHQL_MAX_FIELDS: number
  GRAPHQL_MAX_TOKENS: number
  GRAPHQL_MAX_BODY_BYTES: number
  CORS_ORIGINS?: string
  VISION_MAX_CONCURRENCY: number
  VISION_MAX_CONCURRENCY_PER_CALLER: number
  VISION_QUEUE_SIZE: number
  VISION_QUEUE_TIMEOUT_MS: number
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: number
  PRESSURE_MAX_HEAP_USED_BYTES: number
  PRESSURE_MAX_RSS_BYTES: number
  METRICS_TOKEN?: string
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

  requireHttps('AZURE_OPENAI_ENDPOINT', raw.AZURE_OPENAI_ENDPOINT) // it receives the managed identity's token
  requireHttps('ENTRA_JWKS_URI', raw.ENTRA_JWKS_URI) // plain http would let anyone on the path swap the keys

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

  const modes = raw.AUTH_MODE === 'none' ? [] : raw.AUTH_MODE.split(',') as CallerAuthMode[]
  if (modes.length === 0 && production && !raw.ALLOW_ANONYMOUS) {
    throw new ConfigError('invalid configuration: AUTH_MODE=none with NODE_ENV=production lets anyone spend the deployment\'s quota; ' +
      'set AUTH_MODE (entra, apikey) or ALLOW_ANONYMOUS=true to accept that explicitly')
  }
  const apiKeys = modes.includes('apikey') ? readApiKeys(raw) : []
  if (modes.includes('apikey') && apiKeys.length === 0) {
    throw new ConfigError('invalid configuration: AUTH_MODE includes apikey but neither API_KEY_HASHES nor API_KEY_HASHES_FILE lists a key hash')
  }

  return {
    port: raw.PORT,
    host: raw.HOST,
    logLevel: raw.LOG_LEVEL,
    production,
    graphiql: raw.GRAPHIQL ?? !production,
    maxUploadBytes: raw.MAX_UPLOAD_BYTES,
    requestTimeoutMs: raw.REQUEST_TIMEOUT_MS,
    uploadIdleTimeoutMs: raw.UPLOAD_IDLE_TIMEOUT_MS,
    shutdownGraceMs: raw.SHUTDOWN_GRACE_MS,
    trustProxy: readTrustProxy(raw.TRUST_PROXY),
    auth: {
      modes,
      entra: modes.includes('entra') ? readEntra(raw) : null,
      apiKeys
    },
    limits: {
      ratePerMinute: raw.RATE_LIMIT_PER_MINUTE,
      operationsPerMinute: raw.GRAPHQL_RATE_LIMIT_PER_MINUTE,
      redisUrl: raw.REDIS_URL ?? null,
      introspection: raw.GRAPHQL_INTROSPECTION ?? !production,
      maxQueryDepth: raw.GRAPHQL_MAX_DEPTH,
      maxQueryFields: raw.GRAPHQL_MAX_FIELDS,
      maxQueryTokens: raw.GRAPHQL_MAX_TOKENS,
      maxBodyBytes: raw.GRAPHQL_MAX_BODY_BYTES,
      corsOrigins: raw.CORS_ORIGINS === undefined ? (production ? [] : true) : readList(raw.CORS_ORIGINS)
    },
    overload: {
      maxConcurrency: raw.VISION_MAX_CONCURRENCY,
      maxConcurrencyPerCaller: raw.VISION_MAX_CONCURRENCY_PER_CALLER,
      queueSize: raw.VISION_QUEUE_SIZE,
      queueTimeoutMs: raw.VISION_QUEUE_TIMEOUT_MS,
      maxEventLoopDelayMs: raw.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
      maxHeapUsedBytes: raw.PRESSURE_MAX_HEAP_USED_BYTES,
      maxRssBytes: raw.PRESSURE_MAX_RSS_BYTES
    },
    metricsToken: raw.METRICS_TOKEN ?? null,
    images: {
      detail: raw.VISION_IMAGE_DETAIL,
      maxInputPixels: raw.IMAGE_MAX_INPUT_PIXELS,
      maxSide: raw.IMAGE_MAX_SIDE,
      maxAspectRatio: raw.IMAGE_MAX_ASPECT_RATIO,
      maxDecodeBytes: raw.IMAGE_MAX_DECODE_BYTES,
      memoryBudgetBytes: raw.IMAGE_MEMORY_BUDGET_BYTES,
      jpegQuality: raw.IMAGE_JPEG_QUALITY,
      // As many worst-case decodes as the budget holds (more than the cores would only queue in libvips).
      concurrency: raw.IMAGE_CONCURRENCY ??
        Math.max(1, Math.min(availableParallelism(), Math.floor(raw.IMAGE_MEMORY_BUDGET_BYTES / raw.IMAGE_MAX_DECODE_BYTES)))
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

function readList (value: string): string[] {
  return value.split(',').map(item => item.trim()).filter(Boolean)
}

function readEntra (raw: RawEnv): EntraConfig {
  const tenantId = raw.ENTRA_TENANT_ID
  if (!tenantId) throw new ConfigError('invalid configuration: AUTH_MODE=entra needs ENTRA_TENANT_ID')
  if (!raw.ENTRA_AUDIENCE) throw new ConfigError('invalid configuration: AUTH_MODE=entra needs ENTRA_AUDIENCE (the API\'s client id or App ID URI)')
  const requiredRoles = readList(raw.ENTRA_REQUIRED_ROLES)
  if (requiredRoles.length === 0) throw new ConfigError('invalid configuration: ENTRA_REQUIRED_ROLES is empty')
  return {
    tenantId,
    audiences: readList(raw.ENTRA_AUDIENCE),
    requiredRoles,
    jwksUri: raw.ENTRA_JWKS_URI ?? `https://login.microsoftonline.com/${tenantId}/discovery/v2.0/keys`,
    issuers: raw.ENTRA_ISSUER
      ? readList(raw.ENTRA_ISSUER)
      : [`https://login.microsoftonline.com/${tenantId}/v2.0`, `https://sts.windows.net/${tenantId}/`],
    jwksTimeoutMs: raw.ENTRA_JWKS_TIMEOUT_MS
  }
}

/** `API_KEY_HASHES` and/or the file `API_KEY_HASHES_FILE`: SHA-256 hex hashes, optionally `name:hash`, comma- or line-separated. */
function readApiKeys (raw: RawEnv): ApiKeyEntry[] {
  let text = raw.API_KEY_HASHES ?? ''
  if (raw.API_KEY_HASHES_FILE) {
    try {
      text += '\n' + readFileSync(raw.API_KEY_HASHES_FILE, 'utf8')
    } catch (err) {
      throw new ConfigError(`invalid configuration: API_KEY_HASHES_FILE cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  const entries: ApiKeyEntry[] = []
  for (const line of text.split(/[,\n]/)) {
    const item = line.replace(/#.*/, '').trim()
    if (item === '') continue
    const match = API_KEY_ENTRY.exec(item)
    if (!match) throw new ConfigError('invalid configuration: API_KEY_HASHES entries must be 64 hex digits (a SHA-256), optionally prefixed by "name:"')
    const hash = (match[2] as string).toLowerCase()
    entries.push({ id: match[1] ?? hash.slice(0, 12), sha256: Buffer.from(hash, 'hex') })
  }
  return entries
}

/** https, except on loopback (local fakes and sidecars). */
function requireHttps (name: string, value: string | undefined): void {
  if (value === undefined) return
  const url = new URL(value)
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname)
  if (url.protocol !== 'https:' && !loopback) throw new ConfigError(`invalid configuration: ${name} must be an https:// URL (plain http only on loopback)`)
}

function readTrustProxy (value: string): boolean | number | string {
  if (value === 'true') return true // any X-Forwarded-For is believed: app.ts warns about it
  if (value === 'false') return false
  if (/^\d+$/.test(value)) return Number(value) // hops: the address that many proxies before us
  return value // the proxies' addresses or CIDRs, comma-separated
}
