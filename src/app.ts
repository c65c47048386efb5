// The app factory: builds the service from plugins and the services it is handed.
// No module-level singletons: tests pass fakes, src/server.ts passes the real backends.
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import multipart from '@fastify/multipart'
import type { Config } from './config.ts'
import { loggerOptions } from './logger.ts'
import type { VisionService } from './vision/types.ts'
import { createImagePipeline, type ImagePipeline } from './image/pipeline.ts'
import healthPlugin from './health.ts'
import graphqlPlugin from './graphql/plugin.ts'
import graphiqlPlugin from './graphiql/plugin.ts'
import callerAuthPlugin from './auth/plugin.ts'

export interface AppOptions {
  config: Config
  vision: VisionService
  /** The image pipeline; made from the config when not given. */
  images?: ImagePipeline
  /** A pino logger to share with the services; otherwise one is made from the config. */
  logger?: FastifyBaseLogger
}

export async function buildApp ({ config, vision, images = createImagePipeline(config.images), logger }: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(logger ? { loggerInstance: logger } : { logger: loggerOptions(config) }),
    genReqId: (req) => validRequestId(req.headers['x-request-id']) ?? randomUUID(),
    bodyLimit: 1024 * 1024 // JSON bodies; uploads have their own limit
  })

  // External plugins
  await app.register(multipart)

  // The app's own
  await app.register(callerAuthPlugin, { auth: config.auth })
  await app.register(healthPlugin, { vision })
  await app.register(graphqlPlugin, { config, vision, images })
  if (config.graphiql) await app.register(graphiqlPlugin)

  app.addHook('onClose', async () => { await vision.close?.() })
  return app
}

// Accept a caller's request id for correlation, but only a sane one (it goes into every log line).
function validRequestId (value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && /^[\w.:-]{1,128}$/.test(value) ? value : undefined
}
