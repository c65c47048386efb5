// The core's resolvers: the scalars (./scalars.graphql). Every feature's are in its own folder, handed in
// through app.graphqlRegistry.
import { DateTimeScalar, UploadScalar } from './scalars.ts'
import type { Resolvers } from './generated/schema-types.ts'

export const resolvers: Resolvers = {
  Upload: UploadScalar,
  DateTime: DateTimeScalar
}
