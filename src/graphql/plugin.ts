// POST/GET /graphql: mercurius with our schema, resolvers, error codes, CSRF prevention and uploads.
// Encapsulated (no fastify-plugin): mercurius's error handler applies to these routes only.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import mercurius from 'mercurius'
import type { Config } from '../config.ts'
import type { VisionService } from '../vision/types.ts'
import type { ImagePipeline } from '../image/pipeline.ts'
import { buildContext } from './context.ts'
import { formatErrors } from './errors.ts'
import { resolvers } from './resolvers.ts'
import { loadSchemaSDL } from './schema.ts'
import { readMultipartOperations, type UploadLimits } from './upload.ts'

export interface GraphqlPluginOptions {
  config: Config
  vision: VisionService
  images: ImagePipeline
}

/** Header names that force a CORS preflight, as upload clients already send them. */
export const PREFLIGHT_HEADERS = [
  'graphql-require-preflight',
  'apollo-require-preflight',
  'x-apollo-operation-name',
  'mercurius-require-preflight',
  'x-mercurius-operation-name'
]

export default async function graphqlPlugin (app: FastifyInstance, { config, vision, images }: GraphqlPluginOptions): Promise<void> {
  const limits: UploadLimits = { maxFileBytes: config.maxUploadBytes, maxFiles: 1, maxFieldBytes: 64 * 1024 }

  async function readUploads (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!request.isMultipart()) return
    try {
      request.body = await readMultipartOperations(request, limits)
    } catch (err) {
      discardRest(request, reply)
      throw err
    }
  }

  // Who is calling, before anything of the request is read.
  app.addHook('onRequest', app.authenticate)

  await app.register(mercurius, {
    schema: loadSchemaSDL(),
    resolvers,
    path: '/graphql',
    graphiql: false, // ours, self-hosted: see src/graphiql/
    context: buildContext(config, vision, images),
    allowBatchedQueries: false,
    // Multipart posts need a header a cross-site HTML form cannot send; JSON posts already force a preflight.
    csrfPrevention: { requiredHeaders: PREFLIGHT_HEADERS },
    errorFormatter: (execution, ctx) => formatErrors(execution, ctx.reply?.log ?? ctx.app.log),
    additionalRouteOptions: { preValidation: readUploads }
  })
}

// After a refused upload the rest of the body is still arriving: read and drop it, so the client
// gets its answer instead of a stalled connection, and close the connection afterwards.
function discardRest (request: FastifyRequest, reply: FastifyReply): void {
  reply.header('connection', 'close')
  request.raw.unpipe()
  request.raw.resume()
}
