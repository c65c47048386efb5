// Configuration from the environment, validated once at start-up. Each area declares its variables
// (a TypeBox schema) and turns them into its typed configuration; this module puts the areas
// together: one schema, one validation, then each area's reading, into the Config the app uses.
// An invalid value throws a ConfigError naming the variable; server.ts turns that into exit code 1.
import envSchema from 'env-schema'
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError } from './config-support.ts'
import { ServerEnv, readServerConfig, type ServerConfig } from './server-config.ts'
import { GraphqlEnv, readGraphqlConfig, type GraphqlConfig } from './graphql/config.ts'
import { LimitsEnv, readLimitsConfig, type LimitsConfig } from './limits/config.ts'
import { RedisEnv, readRedisConfig, type RedisConfig } from './redis/config.ts'
import { ImageEnv, readImageConfig, type ImageConfig } from './image/config.ts'
import { VisionEnv, readVisionConfig, type VisionConfig } from './vision/config.ts'
import { AZURE_ENV_ALIASES, AzureEnv, readAzureIdentityConfig, type AzureConfig, type AzureIdentityConfig } from './azure/config.ts'
import { CallersEnv, readCallersConfig, type CallersConfig } from './callers/config.ts'
import { MetricsEnv, readMetricsConfig, type MetricsConfig } from './metrics/config.ts'
import { DatabaseEnv, readDatabaseConfig, type DatabaseTarget } from './database/config.ts'
import { HistoryEnv, readHistoryConfig, type HistoryConfig } from './history/config.ts'
import { ThumbnailsEnv, readThumbnailsConfig, type ThumbnailsConfig } from './thumbnails/config.ts'
import { WebAppEnv, readWebAppConfig, type WebAppConfig } from './webapp/config.ts'
import { SubscriptionsEnv, readSubscriptionsConfig, type SubscriptionsConfig } from './subscriptions/config.ts'
import { WebhooksEnv, readWebhooksConfig, type WebhooksConfig } from './webhooks/config.ts'
import { BulkEnv, readBulkConfig, type BulkConfig } from './bulk/config.ts'

export { ConfigError }

/** Every variable the service reads (aliases aside). */
const Env = Type.Object({
  ...ServerEnv.properties,
  ...GraphqlEnv.properties,
  ...LimitsEnv.properties,
  ...RedisEnv.properties,
  ...ImageEnv.properties,
  ...VisionEnv.properties,
  ...AzureEnv.properties,
  ...CallersEnv.properties,
  ...MetricsEnv.properties,
  ...DatabaseEnv.properties,
  ...HistoryEnv.properties,
  ...ThumbnailsEnv.properties,
  ...WebAppEnv.properties,
  ...SubscriptionsEnv.properties,
  ...WebhooksEnv.properties,
  ...BulkEnv.properties
})
type Env = Static<typeof Env>

/** Old names still accepted when the current name is unset. */
const ALIASES: Record<string, keyof Env> = { ...AZURE_ENV_ALIASES }

/** One slice per area, named as its folder: app.ts hands each plugin its own. */
export interface Config {
  server: ServerConfig
  graphql: GraphqlConfig
  limits: LimitsConfig
  redis: RedisConfig
  images: ImageConfig
  vision: VisionConfig
  /** null unless the vision backend is Azure OpenAI. */
  azure: AzureConfig | null
  /** The managed identity, for whoever needs a token (the vision backend, DATABASE_AUTH=entra). */
  azureIdentity: AzureIdentityConfig
  callers: CallersConfig
  metrics: MetricsConfig
  /** null with HISTORY=off: nothing is kept. */
  database: DatabaseTarget | null
  history: HistoryConfig
  thumbnails: ThumbnailsConfig
  webApp: WebAppConfig
  subscriptions: SubscriptionsConfig
  webhooks: WebhooksConfig
  bulk: BulkConfig
}

export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  // Unset and empty are the same: an empty value takes the default.
  const data: Record<string, string> = {}
  for (const key of Object.keys(Env.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') data[key] = value
  }
  for (const [alias, name] of Object.entries(ALIASES)) {
    const value = env[alias]
    if (data[name] === undefined && value !== undefined && value !== '') data[name] = value
  }

  let raw: Env
  try {
    raw = envSchema<Env>({ schema: Env, data, env: false })
  } catch (err) {
    // ajv says "env/PORT must be <= 65535": keep it, it names the variable.
    throw new ConfigError(`invalid configuration: ${(err as Error).message}`)
  }

  const server = readServerConfig(raw)
  const history = readHistoryConfig(raw)
  const limits = readLimitsConfig(raw)
  const { vision, azure } = readVisionConfig(raw)
  const firstBackend = azure?.backends[0]
  const bulk = readBulkConfig(raw, {
    dataDir: raw.DATA_DIR,
    visionMaxConcurrency: limits.overload.maxConcurrency,
    prices: history.prices,
    azure: firstBackend === undefined ? null : { endpoint: firstBackend.endpoint, apiVersion: firstBackend.apiVersion }
  })
  return {
    server,
    graphql: readGraphqlConfig(raw, server.production),
    limits,
    redis: readRedisConfig(raw),
    images: readImageConfig(raw),
    vision,
    azure,
    azureIdentity: readAzureIdentityConfig(raw),
    callers: readCallersConfig(raw, server.production),
    metrics: readMetricsConfig(raw),
    database: readDatabaseConfig(raw, history.enabled),
    // usage prices Global Batch tokens at the bulk config's batch prices (VISION_BATCH_PRICE_*_PER_MTOK).
    history: { ...history, batchPrices: bulk.batchPrices },
    thumbnails: readThumbnailsConfig(raw),
    webApp: readWebAppConfig(raw),
    subscriptions: readSubscriptionsConfig(raw),
    webhooks: readWebhooksConfig(raw, server.production),
    bulk
  }
}
