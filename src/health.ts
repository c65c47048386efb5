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
    // Degraded parts (history waiting for its database, a database or Redis without its Entra ID token) do not
    // take the instance out: identifications still work. The vision backend's own token is in its status above.
    const degraded = [...app.workers.degraded(), ...tokenFailures(app)]
    return degraded.length > 0 ? { status: 'ok', backend: status.backend, degraded } : { status: 'ok', backend: status.backend }
  })
}

/**
 * Parts other than the vision backend (the database, Redis) whose Entra ID token cannot be had: "database: no
 * Microsoft Entra ID token for https://ossrdbms-aad.database.windows.net/.default". No secret in it.
 */
function tokenFailures (app: FastifyInstance): string[] {
  const failures: string[] = []
  for (const { scope, usedBy } of app.azureTokens?.failing() ?? []) {
    for (const user of usedBy) if (user !== 'vision') failures.push(`${user}: no Microsoft Entra ID token for ${scope}`)
  }
  return failures
}

export default fp(healthPlugin, { name: 'health', fastify: '5.x', encapsulate: true, dependencies: ['pressure', 'workers', 'azure-identity'] })
