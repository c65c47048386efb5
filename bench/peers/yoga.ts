// Peer (b): GraphQL Yoga 5 on node:http with its native multipart uploads (`File` objects; the
// resolver reads `await file.arrayBuffer()`). Production defaults (NODE_ENV=production); upload limits
// set the documented way (formDataLimits on its fetch API).
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createFetch } from '@whatwg-node/fetch'
import { createSchema, createYoga } from 'graphql-yoga'
import { DateTimeScalar, MAX_UPLOAD_BYTES, announce, benchPort, benchVision, identify, typeDefs, type IdentifyArgs } from './shared.ts'

const yoga = createYoga({
  schema: createSchema({
    typeDefs,
    resolvers: {
      DateTime: DateTimeScalar,
      Query: {
        vision: () => benchVision.status()
      },
      Mutation: {
        identifyVehicle: async (_root: unknown, args: IdentifyArgs & { image: File }, ctx: { request: Request }) => {
          const buffer = Buffer.from(await args.image.arrayBuffer())
          return await identify(buffer, args, benchVision, ctx.request.signal)
        }
      }
    }
  }),
  graphqlEndpoint: '/graphql',
  graphiql: false, // as Yoga's docs advise for production
  fetchAPI: createFetch({ formDataLimits: { fileSize: MAX_UPLOAD_BYTES, files: 1, fieldSize: 64 * 1024 } })
})

const server = createServer(yoga)
server.listen(benchPort(), '127.0.0.1', () => {
  announce('yoga', (server.address() as AddressInfo).port, async () => {
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => resolve()))
  })
})
