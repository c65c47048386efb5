// The Redis connections (REDIS_URL), opened here and closed in onClose: `app.redis`, shared by the rate-limit
// counters, and `app.redisConnections`, which hands out the connections another part needs for itself (the
// subscriptions' publisher and subscriber), all built the same way: the URL, REDIS_CA_FILE, and under
// REDIS_AUTH=entra the managed identity's token, kept current on every connection (entra-auth.ts). Both are
// null without REDIS_URL.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Redis, type RedisOptions } from 'ioredis'
import type { TokenSource } from '../azure/token-source.ts'
import type { RedisConfig } from './config.ts'
import { RedisEntraAuth, type RedisAuthStats } from './entra-auth.ts'

export interface RedisConnections {
  /** A new connection, named for the logs, with these options on top of the URL's; the caller closes it. */
  open (name: string, options?: RedisOptions): Redis
  /** Re-authentications under REDIS_AUTH=entra (undefined with a password). */
  authStats (): RedisAuthStats | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis | null
    redisConnections: RedisConnections | null
  }
}

export interface RedisPluginOptions extends RedisConfig {
  /** REDIS_AUTH=entra: the token source of REDIS_ENTRA_SCOPE. */
  tokens?: TokenSource | null
}

async function redisPlugin (app: FastifyInstance, { url, ca, entra, tokens }: RedisPluginOptions): Promise<void> {
  if (url === null) {
    app.decorate('redis', null)
    app.decorate('redisConnections', null)
    return
  }
  if (entra !== undefined && (tokens === undefined || tokens === null)) throw new Error('REDIS_AUTH=entra needs a token source')
  const log = app.log.child({ component: 'redis' })
  const auth = entra === undefined ? undefined : new RedisEntraAuth(tokens!, { username: entra.username, log })
  // The first token before the first connection (bounded by AZURE_TOKEN_TIMEOUT_MS); without one the app starts
  // all the same: the connections fail to authenticate (rate limits fail open) until a token comes.
  await auth?.start()

  const connections: RedisConnections = {
    open (name, options = {}) {
      const redis = new Redis(url, {
        ...options,
        ...(ca === null ? {} : { tls: { ca } }),
        ...auth?.credentials()
      })
      auth?.watch(redis, name)
      return redis
    },
    authStats: () => auth === undefined ? undefined : { ...auth.stats }
  }

  // No offline queue and one retry per command: callers fail fast (and fail open) while Redis is away.
  const redis = connections.open('shared', { connectTimeout: 2000, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  let lastWarning = 0
  redis.on('error', (err: Error) => {
    // ioredis reconnects by itself; say so at most once a minute, without the URL (it may hold a password).
    if (Date.now() - lastWarning > 60_000) {
      lastWarning = Date.now()
      app.log.warn({ err: { name: err.name, message: err.message } }, 'Redis unavailable: what uses it (rate limits) is not enforced meanwhile')
    }
  })
  app.decorate('redis', redis)
  app.decorate('redisConnections', connections)
  app.addHook('onClose', async () => {
    auth?.stop()
    redis.disconnect() // quit() would wait for a Redis that may be gone
  })
}

export default fp(redisPlugin, { name: 'redis', fastify: '5.x' })
