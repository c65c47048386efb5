// The core's resolvers: the scalars (./scalars.graphql). Every feature's are in its own folder, handed in
// through app.graphqlRegistry.
import { DateTimeScalar, UploadScalar } from './scalars.ts'
import { webhookMutations, webhookQueries } from './webhook-resolvers.ts'
import type { Resolvers } from './generated/schema-types.ts'

export const resolvers: Resolvers = {
  Upload: UploadScalar,
  DateTime: DateTimeScalar,
  // Until webhooks hand in their own part (issue 18, H2).
  Query: { ...webhookQueries },
  Mutation: { ...webhookMutations }
}
