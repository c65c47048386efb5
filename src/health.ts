// Liveness and readiness for orchestrators. Open to all: no secrets, no details beyond a reason.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { VisionService } from './vision/types.ts'

async function healthPlugin (app: FastifyInstance, { vision }: { vision: VisionService }): Promise<void> {
  app.get('/health/live', async () => ({ status: 'ok' }))

  app.get('/health/ready', async (_request, reply) => {
    const status = vision.status()
    const unavailable = (reason: string | undefined) => reply.code(503).send({ status: 'unavailable', backend: status.backend, reason })
    if (!status.ready) return await unavailable(status.reason)
    if (app.isUnderPressure()) return await unavailable('under pressure')
    const stalled = app.workers.notReady()
    if (stalled.length > 0) return await unavailable(`worker not ready: ${stalled.join(', ')}`)
    // Degraded parts (history waiting for its database) do not take the instance out: identifications still work.
    const degraded = app.workers.degraded()
    return degraded.length > 0 ? { status: 'ok', backend: status.backend, degraded } : { status: 'ok', backend: status.backend }
  })
}

export default fp(healthPlugin, { name: 'health', fastify: '5.x', encapsulate: true, dependencies: ['pressure', 'workers'] })
