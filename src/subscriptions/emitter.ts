// The channel between instances: with REDIS_URL, mercurius' emitter is mqemitter-redis, so that an
// identification published on one instance reaches subscribers on every instance (each publishes to
// and listens on one Redis channel). It needs connections of its own: a Redis connection that
// subscribes can do nothing else, so the shared `app.redis` cannot serve; the redis slice opens them
// (app.redisConnections), authenticated as it authenticates every connection (REDIS_AUTH). Without REDIS_URL
// mercurius keeps its in-process emitter.
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import mqemitterRedis from 'mqemitter-redis'
import type { RedisConnections } from '../redis/plugin.ts'

export type RedisEmitter = ReturnType<typeof mqemitterRedis>

export function createRedisEmitter (connections: RedisConnections, log: FastifyBaseLogger): RedisEmitter {
  // The subscriber keeps ioredis' defaults (queue while away, resubscribe on reconnect); publishing fails
  // fast while Redis is away: a live update is dropped (history keeps the record), never piled up in memory.
  const subConn = connections.open('subscriptions-subscriber', { connectTimeout: 2000 })
  const pubConn = connections.open('subscriptions-publisher', { connectTimeout: 2000, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  const emitter = mqemitterRedis({ subConn, pubConn })
  let lastWarning = 0
  // mqemitter-redis re-emits its connections' errors here: without a listener they would end the process.
  ;(emitter as unknown as { state: NodeJS.EventEmitter }).state.on('error', (err: Error) => {
    // ioredis reconnects by itself; say so at most once a minute, without the URL (it may hold a password).
    if (Date.now() - lastWarning > 60_000) {
      lastWarning = Date.now()
      log.warn({ err: { name: err.name, message: err.message } }, 'Redis unavailable: live updates (subscriptions) do not cross instances meanwhile')
    }
  })
  return emitter
}

/** Quits both connections; bounded, as Redis may be gone. */
export async function closeRedisEmitter (emitter: RedisEmitter, timeoutMs = 2000): Promise<void> {
  const { subConn, pubConn } = emitter as unknown as { subConn: Redis, pubConn: Redis }
  // mqemitter-redis quits both and ignores the outcome: a connection that is not up (Redis away, or not yet
  // authenticated) refuses QUIT, an unhandled rejection. Handle it: that connection is simply closed.
  for (const connection of [subConn, pubConn]) {
    const quit = connection.quit.bind(connection)
    connection.quit = (async () => {
      try {
        return await quit()
      } catch {
        connection.disconnect()
        return 'OK'
      }
    }) as Redis['quit']
  }
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    new Promise<void>(resolve => { emitter.close(() => resolve()) }),
    new Promise<void>(resolve => { timer = setTimeout(resolve, timeoutMs) })
  ])
  clearTimeout(timer)
  subConn.disconnect()
  pubConn.disconnect()
}
