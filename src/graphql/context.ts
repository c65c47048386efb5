// The typed GraphQL context: what every resolver may use, built once per request.
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.ts'
import type { VisionService } from '../vision/types.ts'
import type { ImagePipeline } from '../image/pipeline.ts'
import type { Caller } from '../auth/plugin.ts'

export interface AppContext {
  config: Config
  vision: VisionService
  images: ImagePipeline
  log: FastifyBaseLogger
  /** Who is calling (anonymous when AUTH_MODE=none). */
  caller: Caller | null
  /** Aborted when the client disconnects before its answer is sent. */
  signal: AbortSignal
}

declare module 'mercurius' {
  interface MercuriusContext extends AppContext {}
}

export function buildContext (config: Config, vision: VisionService, images: ImagePipeline) {
  return (request: FastifyRequest, reply: FastifyReply): AppContext => {
    const controller = new AbortController()
    // 'close' before 'finish' on the response means the connection went away.
    reply.raw.once('close', () => { if (!reply.raw.writableFinished) controller.abort() })
    return { config, vision, images, caller: request.caller, log: request.log, signal: controller.signal }
  }
}
