// Vision as a plugin: decorates `app.vision` with the service it is handed (src/server.ts builds the real one,
// tests their own), registers its metrics, warms it up once the server listens, and closes it with the app.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Metrics } from '../metrics/registry.ts'
import { measureVision } from './metrics.ts'
import type { VisionService } from './types.ts'

declare module 'fastify' {
  interface FastifyInstance {
    vision: VisionService
  }
}

export interface VisionPluginOptions {
  vision: VisionService
  metrics: Metrics
}

async function visionPlugin (app: FastifyInstance, { vision, metrics }: VisionPluginOptions): Promise<void> {
  app.decorate('vision', vision)
  const stopMeasuring = measureVision(vision, metrics)
  // After listen, as before: the process answers /health/live while the first token is fetched; ready once it is in.
  // warmUp never throws (a failed fetch is logged).
  app.addHook('onListen', async () => {
    if (vision.warmUp === undefined) return
    const started = performance.now()
    await vision.warmUp()
    if (vision.status().ready) app.log.info({ ms: Math.round(performance.now() - started) }, 'vision backend ready')
  })
  app.addHook('onClose', async () => {
    stopMeasuring()
    await vision.close?.()
  })
}

export default fp(visionPlugin, { name: 'vision', fastify: '5.x' })
