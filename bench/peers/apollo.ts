// Peer (a): Apollo Server 5 on Express 5, uploads by graphql-upload 17 (the `GraphQLUpload` scalar;
// the resolver reads the file stream into a Buffer). Apollo's defaults for production (NODE_ENV=production),
// CSRF prevention on (its default): the load sends `apollo-require-preflight: 1`.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Readable } from 'node:stream'
import { ApolloServer, HeaderMap, type BaseContext, type HTTPGraphQLRequest } from '@apollo/server'
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer'
import express, { type RequestHandler } from 'express'
import GraphQLUpload from 'graphql-upload/GraphQLUpload.mjs'
import graphqlUploadExpress from 'graphql-upload/graphqlUploadExpress.mjs'
import type { FileUpload } from 'graphql-upload/processRequest.mjs'
import { DateTimeScalar, MAX_UPLOAD_BYTES, announce, benchPort, benchVision, identify, typeDefs, type IdentifyArgs } from './shared.ts'

interface Context extends BaseContext {
  signal: AbortSignal
}

const resolvers = {
  Upload: GraphQLUpload,
  DateTime: DateTimeScalar,
  Query: {
    vision: () => benchVision.status()
  },
  Mutation: {
    identifyVehicle: async (_root: unknown, args: IdentifyArgs & { image: Promise<FileUpload> }, ctx: Context) => {
      const upload = await args.image
      const buffer = await readAll(upload.createReadStream())
      return await identify(buffer, args, benchVision, ctx.signal)
    }
  }
}

async function readAll (stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

const app = express()
const httpServer = createServer(app)
const server = new ApolloServer<Context>({
  typeDefs,
  resolvers,
  csrfPrevention: true,
  plugins: [ApolloServerPluginDrainHttpServer({ httpServer })]
})
await server.start()

app.use(
  '/graphql',
  graphqlUploadExpress({ maxFileSize: MAX_UPLOAD_BYTES, maxFiles: 1 }),
  express.json(),
  expressMiddleware(server, ({ res }) => {
    const controller = new AbortController()
    res.once('close', () => { if (!res.writableFinished) controller.abort() })
    return { signal: controller.signal }
  })
)

const port = benchPort()
httpServer.listen(port, '127.0.0.1', () => {
  announce('apollo', (httpServer.address() as AddressInfo).port, async () => { await server.stop() })
})

/**
 * Apollo Server 5 no longer ships an Express middleware; its own integration package
 * (@as-integrations/express5) is not installed here. This is the same translation it does
 * (req → HTTPGraphQLRequest → executeHTTPGraphQLRequest → res), as in Apollo's "building integrations" guide.
 */
function expressMiddleware (
  apollo: ApolloServer<Context>,
  context: (args: { req: express.Request, res: express.Response }) => Context
): RequestHandler {
  apollo.assertStarted('expressMiddleware()')
  return (req, res, next) => {
    const headers = new HeaderMap()
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value)
    }
    const queryAt = req.url.indexOf('?')
    const httpGraphQLRequest: HTTPGraphQLRequest = {
      method: req.method.toUpperCase(),
      headers,
      search: queryAt === -1 ? '' : req.url.slice(queryAt),
      body: req.body
    }
    apollo
      .executeHTTPGraphQLRequest({ httpGraphQLRequest, context: async () => context({ req, res }) })
      .then(async (response) => {
        for (const [key, value] of response.headers) res.setHeader(key, value)
        res.statusCode = response.status ?? 200
        if (response.body.kind === 'complete') {
          res.send(response.body.string)
          return
        }
        for await (const chunk of response.body.asyncIterator) res.write(chunk)
        res.end()
      })
      .catch(next)
  }
}
