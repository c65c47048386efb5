// Thumbnails' part of the GraphQL API (thumbnails.graphql): `Identification.thumbnailUrl`, a signed URL. Registered
// even with HISTORY=off (the schema does not change): it is then null.
import { readFileSync } from 'node:fs'
import type { GraphqlPart } from '../graphql/registry.ts'
import type { IdentificationResolvers } from '../graphql/generated/schema-types.ts'

const SDL = readFileSync(new URL('./thumbnails.graphql', import.meta.url), 'utf8')

const identification: Pick<IdentificationResolvers, 'thumbnailUrl'> = {
  // Made off the request path, so not there yet for a fresh answer: null.
  thumbnailUrl: (parent, _args, ctx) => ctx.request.server.thumbnails?.url(ctx.request, parent) ?? null
}

export const thumbnailsGraphql: GraphqlPart = {
  name: 'thumbnails',
  sdl: SDL,
  resolvers: { Identification: identification } as GraphqlPart['resolvers']
}
