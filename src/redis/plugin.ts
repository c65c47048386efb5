// The shared Redis connection (REDIS_URL), opened here and closed in onClose: rate-limit counters
// today, cross-instance events later. `app.redis` is null without REDIS_URL.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis | null
  }
}

export interface RedisPluginOptions {
  url: string | null
}

async function redisPlugin (app: FastifyInstance, { url }: RedisPluginOptions): Promise<void> {
  if (url === null) {
    app.decorate('redis', null)
    return
  }
  // No offline queue and one retry per command: callers fail fast (and fail open) while Redis is away.
  const redis = new Redis(url, { connectTimeout: 2000, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  let lastWarning = 0
  redis.on('error', (err: Error) => {
    // ioredis reconnects by itself; say so at most once a minute, without the URL (it may hold a password).
    if (Date.now() - lastWarning > 60_000) {
      lastWarning = Date.now()
      app.log.warn({ err: { name: err.name, message: err.message } }, 'Redis unavailable: what uses it (rate limits) is not enforced meanwhile')
    }
  })
  app.decorate('redis', redis)
  app.addHook('onClose', async () => {
    redis.disconnect() // quit() would wait for a Redis that may be gone
  })
}

export default fp(redisPlugin, { name: 'redis', fastify: '5.x' })
