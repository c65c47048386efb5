// The process and its HTTP server: environment, address, logging, timeouts, proxies, CORS.
import { Type, type Static } from '@sinclair/typebox'
import { StringEnum, readList } from './config-support.ts'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]

export const ServerEnv = Type.Object({
  /** `production` changes defaults: no GraphiQL, no introspection, no cross-origin access, no anonymous callers. */
  NODE_ENV: Type.String({ default: 'development' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  LOG_LEVEL: StringEnum(LOG_LEVELS, { default: 'info' }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 120_000 }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 25_000 }),
  TRUST_PROXY: Type.String({ pattern: '^(true|false|[0-9a-fA-F.:/, ]+)$', default: 'false' }),
  /** Comma-separated origins; unset: any origin in development, none in production. */
  CORS_ORIGINS: Type.Optional(Type.String())
})
export type ServerEnv = Static<typeof ServerEnv>

export interface ServerConfig {
  port: number
  host: string
  logLevel: LogLevel
  production: boolean
  /** Whole-request receive timeout (slow uploads are cut off after this). */
  requestTimeoutMs: number
  /** How long SIGTERM waits for in-flight requests. */
  shutdownGraceMs: number
  /** Fastify's trustProxy: which proxies' X-Forwarded-For give the client address (a hop count, or their addresses/CIDRs). */
  trustProxy: boolean | number | string
  /** `true`: any origin; else the list (empty: no cross-origin access). */
  corsOrigins: true | string[]
}

export function readServerConfig (raw: ServerEnv): ServerConfig {
  const production = raw.NODE_ENV === 'production'
  return {
    port: raw.PORT,
    host: raw.HOST,
    logLevel: raw.LOG_LEVEL,
    production,
    requestTimeoutMs: raw.REQUEST_TIMEOUT_MS,
    shutdownGraceMs: raw.SHUTDOWN_GRACE_MS,
    trustProxy: readTrustProxy(raw.TRUST_PROXY),
    corsOrigins: raw.CORS_ORIGINS === undefined ? (production ? [] : true) : readList(raw.CORS_ORIGINS)
  }
}

function readTrustProxy (value: string): boolean | number | string {
  if (value === 'true') return true // any X-Forwarded-For is believed: app.ts warns about it
  if (value === 'false') return false
  if (/^\d+$/.test(value)) return Number(value) // hops: the address that many proxies before us
  return value // the proxies' addresses or CIDRs, comma-separated
}
