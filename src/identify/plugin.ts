// The identify feature: Mutation.identifyVehicle and Query.vision (./identify.graphql, ./graphql.ts),
// handed to the GraphQL core. It holds the root Query and Mutation types the other features extend.
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { identifyResolvers, type IdentifyOptions } from './graphql.ts'

async function identifyPlugin (app: FastifyInstance, options: IdentifyOptions): Promise<void> {
  app.graphqlRegistry.add({
    name: 'identify',
    sdl: readFileSync(new URL('./identify.graphql', import.meta.url), 'utf8'),
    resolvers: identifyResolvers(options)
  })
}

export default fp(identifyPlugin, { name: 'identify', fastify: '5.x', dependencies: ['graphql-registry', 'identification'] })
