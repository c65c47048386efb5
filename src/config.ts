// Configuration from the environment, validated once at start-up. Each area declares its variables
// (a TypeBox schema) and turns them into its typed configuration; this module puts the areas
// together: one schema, one validation, then each area's reading, into the Config the app uses.
// An invalid value throws a ConfigError naming the variable; server.ts turns that into exit code 1.
import envSchema from 'env-schema'
import { Type, type Static } from '@sinclair/typebox'
import { ConfigError } from './config-support.ts'
import { ServerEnv, readServerConfig, type ServerConfig } from './server-config.ts'
import { GraphqlEnv, readGraphqlConfig, type GraphqlConfig } from './graphql/config.ts'
import { LimitsEnv, readLimitsConfig, type OverloadConfig, type RateLimitConfig } from './limits/config.ts'
import { ImageEnv, readImageConfig, type ImageConfig } from './image/config.ts'
import { VisionEnv, readVisionConfig, type VisionConfig } from './vision/config.ts'
import { AZURE_ENV_ALIASES, AzureEnv } from './azure/config.ts'
import { CallersEnv, readCallersConfig, type CallersConfig } from './callers/config.ts'
import { MetricsEnv, readMetricsConfig } from './metrics/config.ts'
import { HistoryEnv, readHistoryConfig, type HistoryConfig } from './history/config.ts'
import { WebAppEnv, readWebAppConfig, type WebAppConfig } from './webapp/config.ts'
import { SubscriptionsEnv, readSubscriptionsConfig, type SubscriptionsConfig } from './subscriptions/config.ts'
import { WebhooksEnv, readWebhooksConfig, type WebhooksConfig } from './webhooks/config.ts'

export { ConfigError }

/** Every variable the service reads (aliases aside). */
const Env = Type.Object({
  ...ServerEnv.properties,
  ...GraphqlEnv.properties,
  ...LimitsEnv.properties,
  ...ImageEnv.properties,
  ...VisionEnv.properties,
  ...AzureEnv.properties,
  ...CallersEnv.properties,
  ...MetricsEnv.properties,
  ...HistoryEnv.properties,
  ...WebAppEnv.properties,
  ...SubscriptionsEnv.properties,
  ...WebhooksEnv.properties
})
type Env = Static<typeof Env>

/** Old names still accepted when the current name is unset. */
const ALIASES: Record<string, keyof Env> = { ...AZURE_ENV_ALIASES }

type GraphqlEndpointConfig = Pick<GraphqlConfig, 'graphiql' | 'maxUploadBytes' | 'uploadIdleTimeoutMs' | 'uploadMinBytesPerSecond'>

export interface Config extends Omit<ServerConfig, 'corsOrigins'>, GraphqlEndpointConfig {
  auth: CallersConfig
  limits: RateLimitConfig & Omit<GraphqlConfig, keyof GraphqlEndpointConfig> & Pick<ServerConfig, 'corsOrigins'>
  overload: OverloadConfig
  metricsToken: string | null
  images: ImageConfig
  vision: VisionConfig
  history: HistoryConfig
  webApp: WebAppConfig
  subscriptions: SubscriptionsConfig
  webhooks: WebhooksConfig
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

  const { corsOrigins, ...server } = readServerConfig(raw)
  const graphql = readGraphqlConfig(raw, server.production)
  const { graphiql, maxUploadBytes, uploadIdleTimeoutMs, uploadMinBytesPerSecond, ...queryLimits } = graphql
  const { rates, overload } = readLimitsConfig(raw)
  const images = readImageConfig(raw)
  const vision = readVisionConfig(raw)
  const auth = readCallersConfig(raw, server.production)
  const metrics = readMetricsConfig(raw)
  const history = readHistoryConfig(raw)
  const webApp = readWebAppConfig(raw)
  const subscriptions = readSubscriptionsConfig(raw)
  const webhooks = readWebhooksConfig(raw, server.production)

  return {
    ...server,
    graphiql,
    maxUploadBytes,
    uploadIdleTimeoutMs,
    uploadMinBytesPerSecond,
    auth,
    limits: { ...rates, ...queryLimits, corsOrigins },
    overload,
    metricsToken: metrics.token,
    images,
    vision,
    history,
    webApp,
    subscriptions,
    webhooks
  }
}
