// The GraphQL endpoint: GraphiQL, introspection, what one operation may cost, uploads.
import { Type, type Static } from '@sinclair/typebox'

const MiB = 1024 * 1024

export const GraphqlEnv = Type.Object({
  /** Unset: on in development, off in production. */
  GRAPHIQL: Type.Optional(Type.Boolean()),
  /** Unset: on in development, off in production. */
  GRAPHQL_INTROSPECTION: Type.Optional(Type.Boolean()),
  GRAPHQL_MAX_DEPTH: Type.Integer({ minimum: 8, maximum: 100, default: 15 }),
  GRAPHQL_MAX_FIELDS: Type.Integer({ minimum: 50, maximum: 100_000, default: 500 }),
  GRAPHQL_MAX_TOKENS: Type.Integer({ minimum: 500, maximum: 100_000, default: 2_000 }),
  GRAPHQL_MAX_BODY_BYTES: Type.Integer({ minimum: 1024, maximum: 10 * MiB, default: 100 * 1024 }),
  MAX_UPLOAD_BYTES: Type.Integer({ minimum: 1024, maximum: 100 * MiB, default: 20 * MiB }),
  UPLOAD_IDLE_TIMEOUT_MS: Type.Integer({ minimum: 500, maximum: 600_000, default: 5_000 }),
  /** 0: no minimum (the idle timeout and REQUEST_TIMEOUT_MS still apply). */
  UPLOAD_MIN_BYTES_PER_SECOND: Type.Integer({ minimum: 0, maximum: 100 * MiB, default: 1024 })
})
export type GraphqlEnv = Static<typeof GraphqlEnv>

export interface GraphqlConfig {
  graphiql: boolean
  introspection: boolean
  maxQueryDepth: number
  /** Fields per operation, aliases and expanded fragments included. */
  maxQueryFields: number
  /** graphql-js parser's token limit: bounds the parse and the parsed document's memory. */
  maxQueryTokens: number
  /** Largest JSON body (a GraphQL operation without a file). */
  maxBodyBytes: number
  maxUploadBytes: number
  /** An upload whose body makes no progress for this long is refused and its bytes' budget freed. */
  uploadIdleTimeoutMs: number
  /** After the idle timeout's time, an upload whose body averages less than this (bytes/s) is refused: a drip. */
  uploadMinBytesPerSecond: number
}

export function readGraphqlConfig (raw: GraphqlEnv, production: boolean): GraphqlConfig {
  return {
    graphiql: raw.GRAPHIQL ?? !production,
    introspection: raw.GRAPHQL_INTROSPECTION ?? !production,
    maxQueryDepth: raw.GRAPHQL_MAX_DEPTH,
    maxQueryFields: raw.GRAPHQL_MAX_FIELDS,
    maxQueryTokens: raw.GRAPHQL_MAX_TOKENS,
    maxBodyBytes: raw.GRAPHQL_MAX_BODY_BYTES,
    maxUploadBytes: raw.MAX_UPLOAD_BYTES,
    uploadIdleTimeoutMs: raw.UPLOAD_IDLE_TIMEOUT_MS,
    uploadMinBytesPerSecond: raw.UPLOAD_MIN_BYTES_PER_SECOND
  }
}
