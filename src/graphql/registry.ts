// Where features hand in their part of the GraphQL API: each its SDL (a .graphql file beside its
// resolvers) and resolvers, and the subscriptions feature its transport. The graphql plugin composes
// them once, when it registers; so a feature registers before it, and src/graphql/ names no feature.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { IResolvers, MercuriusOptions, PubSub } from 'mercurius'
import { GraphQLScalarType } from 'graphql'
import type { Caller } from '../callers/caller.ts'

export interface GraphqlPart {
  /** The feature's name, for errors. */
  name: string
  /** Its SDL: types, and `extend type Query/Mutation/Subscription/...` for what it adds to others. */
  sdl?: string
  /** Its resolvers, by type and field. A field given by two parts is an error. */
  resolvers?: IResolvers
}

/** Who is on a subscription's socket, once its `connection_init` has been verified. */
export interface Subscriber {
  caller: Caller
  /** Aborted when the socket closes. */
  closed: AbortSignal
  /** To call when one of the socket's subscriptions is refused (too many close the socket). */
  failed: () => void
}

export type SubscriptionOptions = Exclude<NonNullable<MercuriusOptions['subscription']>, boolean>

/** The WebSocket side of subscriptions, which the graphql plugin hands to mercurius. */
export interface SubscriptionTransport {
  /** mercurius' `subscription` option; `context` builds each connection's GraphQL context. */
  mercuriusOptions (context: (request: FastifyRequest, subscriber: Subscriber) => Record<string, unknown>): SubscriptionOptions
  /** Called once mercurius is registered, with its pubsub. */
  publishTo (pubsub: PubSub): void
}

/**
 * How a mutation's files are received, when not as identifyVehicle's (one file of MAX_UPLOAD_BYTES, in memory):
 * chosen once the request's `operations` is read, by its one root field.
 */
export interface UploadPolicy {
  /** The mutation (root field) whose files it governs. */
  field: string
  maxFiles: number
  maxFileBytes: number
  /** 'memory': a buffer each (charged to the upload bytes in flight); a folder: each streamed to a new file in it. */
  sink: 'memory' | { dir: string }
  /**
   * Before any file is read: refuses by throwing (an AppError: RATE_LIMITED, OVERLOADED, …) or admits, returning
   * what gives back what it holds, called once the request has ended. `declaredBytes`: the content-length, if any.
   */
  admit? (request: FastifyRequest, declaredBytes: number | null): Promise<() => void>
}

export interface GraphqlRegistry {
  add (part: GraphqlPart): void
  /** A mutation's upload policy (one per field). */
  addUploadPolicy (policy: UploadPolicy): void
  useSubscriptions (transport: SubscriptionTransport): void
  /** For the graphql plugin: what was registered. Closes the registry. */
  compose (): { parts: readonly GraphqlPart[], subscriptions: SubscriptionTransport | null, uploadPolicies: readonly UploadPolicy[] }
}

declare module 'fastify' {
  interface FastifyInstance {
    graphqlRegistry: GraphqlRegistry
  }
}

export function createGraphqlRegistry (): GraphqlRegistry {
  const parts: GraphqlPart[] = []
  let subscriptions: SubscriptionTransport | null = null
  const uploadPolicies: UploadPolicy[] = []
  let composed = false
  const open = (what: string): void => {
    if (composed) throw new Error(`${what}: the GraphQL schema is already composed; register the feature before the graphql plugin`)
  }
  return {
    add (part) {
      open(`graphqlRegistry.add(${part.name})`)
      if (parts.some(p => p.name === part.name)) throw new Error(`GraphQL part ${part.name} registered twice`)
      parts.push(part)
    },
    addUploadPolicy (policy) {
      open(`graphqlRegistry.addUploadPolicy(${policy.field})`)
      if (uploadPolicies.some(p => p.field === policy.field)) throw new Error(`upload policy of ${policy.field} registered twice`)
      uploadPolicies.push(policy)
    },
    useSubscriptions (transport) {
      open('graphqlRegistry.useSubscriptions')
      if (subscriptions !== null) throw new Error('a subscription transport is already registered')
      subscriptions = transport
    },
    compose () {
      composed = true
      return { parts, subscriptions, uploadPolicies }
    }
  }
}

/** The resolvers of every part merged by type; a field two parts both resolve is a mistake, said at start-up. */
export function mergeResolvers (parts: readonly GraphqlPart[]): IResolvers {
  const merged: Record<string, Record<string, unknown>> = {}
  const owner = new Map<string, string>()
  for (const part of parts) {
    for (const [type, fields] of Object.entries(part.resolvers ?? {})) {
      if (typeof fields !== 'object' || fields === null || fields instanceof GraphQLScalarType) {
        claim(owner, type, part.name)
        ;(merged as Record<string, unknown>)[type] = fields
        continue
      }
      const into = merged[type] ??= {}
      for (const [field, resolver] of Object.entries(fields)) {
        claim(owner, `${type}.${field}`, part.name)
        into[field] = resolver
      }
    }
  }
  return merged as IResolvers
}

function claim (owner: Map<string, string>, key: string, name: string): void {
  const first = owner.get(key)
  if (first !== undefined) throw new Error(`GraphQL ${key} is resolved by both ${first} and ${name}`)
  owner.set(key, name)
}

async function graphqlRegistryPlugin (app: FastifyInstance): Promise<void> {
  app.decorate('graphqlRegistry', createGraphqlRegistry())
}

export default fp(graphqlRegistryPlugin, { name: 'graphql-registry', fastify: '5.x' })
