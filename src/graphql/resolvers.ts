// The core's resolvers: the scalars (./scalars.graphql). Every feature's are in its own folder, handed in
// through app.graphqlRegistry.
import { DateTimeScalar, UploadScalar } from './scalars.ts'
import { historyMutations, historyQueries } from './history-resolvers.ts'
import { webhookMutations, webhookQueries } from './webhook-resolvers.ts'
import type { Resolvers } from './generated/schema-types.ts'

export const resolvers: Resolvers = {
  Upload: UploadScalar,
  DateTime: DateTimeScalar,
  // Until history, thumbnails and webhooks hand in their own parts (issue 18, H1 and H2).
  Query: { ...historyQueries, ...webhookQueries },
  Mutation: { ...historyMutations, ...webhookMutations },
  Identification: {
    thumbnailUrl: (parent, _args, ctx) => ctx.request.server.thumbnails?.url(ctx.request, parent) ?? null
  }
}
