// GET /metrics in Prometheus format (optionally behind METRICS_TOKEN), and HTTP request metrics.
import { timingSafeEqual, createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { labelled, type Metrics } from './registry.ts'

export interface MetricsPluginOptions {
  metrics: Metrics
  token: string | null
}

async function metricsPlugin (app: FastifyInstance, { metrics, token }: MetricsPluginOptions): Promise<void> {
  const requests = labelled(metrics.httpRequests)
  const durations = labelled(metrics.httpDuration)
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    requests(route, request.method, reply.statusCode).inc()
    durations(route).observe(reply.elapsedTime / 1000)
  })

  const expected = token === null ? null : digest(token)
  app.get('/metrics', async (request, reply) => {
    if (expected !== null) {
      const presented = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
      if (presented === undefined || !timingSafeEqual(digest(presented), expected)) {
        return await reply.code(401).header('www-authenticate', 'Bearer realm="metrics"').send({ error: 'metrics need the bearer token METRICS_TOKEN' })
      }
    }
    return await reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}

// Compare digests, so the comparison is constant-time whatever the lengths.
function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

export default fp(metricsPlugin, { name: 'metrics', fastify: '5.x' })
