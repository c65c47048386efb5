// Liveness and readiness for orchestrators. Open to all: no secrets, no details beyond a reason.
import type { FastifyInstance } from 'fastify'
import type { VisionService } from './vision/types.ts'

export default async function healthPlugin (app: FastifyInstance, { vision }: { vision: VisionService }): Promise<void> {
  app.get('/health/live', async () => ({ status: 'ok' }))

  app.get('/health/ready', async (_request, reply) => {
    const status = vision.status()
    if (!status.ready) return await reply.code(503).send({ status: 'unavailable', backend: status.backend, reason: status.reason })
    if (app.isUnderPressure()) return await reply.code(503).send({ status: 'unavailable', backend: status.backend, reason: 'under pressure' })
    return { status: 'ok', backend: status.backend }
  })
}
