// Thin resolvers: validate the arguments and delegate.
import { BadUserInputError } from '../errors.ts'
import { LANGUAGE_TAG } from '../vision/language.ts'
import type { ImageDetail } from '../image/tokens.ts'
import { DEFAULT_INSTRUCTIONS } from '../vision/types.ts'
import { ANONYMOUS, requireRole } from '../callers/caller.ts'
import { callerKey } from '../http/requests.ts'
import { DateTimeScalar, UploadScalar } from './scalars.ts'
import { historyMutations, historyQueries } from './history-resolvers.ts'
import { subscriptionResolvers } from './subscription-resolvers.ts'
import { withIdempotency } from './idempotency.ts'
import type { ImageDetail as SchemaImageDetail, Resolvers } from './generated/schema-types.ts'

export const MAX_INSTRUCTIONS_LENGTH = 2000

const IMAGE_DETAIL: Record<SchemaImageDetail, ImageDetail> = { AUTO: 'auto', HIGH: 'high', LOW: 'low' }

// Typed from the SDL (src/graphql/generated/schema-types.ts, `npm run codegen`): the arguments, the
// context, and each return value against its GraphQL type (so the domain `Identification` must fit
// the schema's `Identification`, field by field).
export const resolvers: Resolvers = {
  Upload: UploadScalar,
  DateTime: DateTimeScalar,
  Query: {
    vision: (_root, _args, ctx) => {
      const { backend, deployment, ready } = ctx.vision.status()
      // As /health/ready: under pressure, new identifications are refused, so it cannot take one.
      // backends: read by its own resolver below, for the Admin role only.
      return { backend, deployment, ready: ready && !ctx.underPressure(), backends: [] }
    },
    ...historyQueries
  },
  Mutation: {
    identifyVehicle: async (_root, args, ctx) => {
      const caller = ctx.caller ?? ANONYMOUS
      requireRole(caller, 'Identify')
      const input = {
        image: args.image.buffer,
        instructions: readInstructions(args.instructions),
        language: readLanguage(args.language, ctx.config.vision.language),
        detail: args.detail ? IMAGE_DETAIL[args.detail] : ctx.config.images.detail,
        signal: ctx.signal
      }
      const origin = { caller, requestId: ctx.requestId, share: callerKey(ctx.request) }
      const call = { origin, input, log: ctx.log, http: { request: ctx.request, reply: ctx.reply } }
      try {
        // Idempotency-Key: a replay, a 409/422, or the identification itself (src/graphql/idempotency.ts).
        return await withIdempotency(ctx, input, () => ctx.request.server.identification.identify(call))
      } finally {
        args.image.release() // the flow is over (whatever keeps the bytes longer copies them): the buffer is reused
      }
    },
    ...historyMutations
  },
  VisionStatus: {
    // Routing state (holds, breakers) tells an outsider when the service is weakest: operators only.
    backends: (_parent, _args, ctx) => {
      requireRole(ctx.caller ?? ANONYMOUS, 'Admin')
      return ctx.vision.backends?.() ?? []
    }
  },
  Subscription: subscriptionResolvers,
  Identification: {
    // Signed thumbnail URLs: src/thumbnails/ (made off the request path, so not there yet for a fresh answer: null).
    thumbnailUrl: (parent, _args, ctx) => ctx.request.server.thumbnails?.url(ctx.request, parent) ?? null
  }
}

function readInstructions (value: string | null | undefined): string {
  const text = value?.trim() ?? ''
  if (text.length > MAX_INSTRUCTIONS_LENGTH) {
    throw new BadUserInputError(`\`instructions\` is ${text.length} characters long; at most ${MAX_INSTRUCTIONS_LENGTH} are allowed.`, { argument: 'instructions' })
  }
  return text === '' ? DEFAULT_INSTRUCTIONS : text
}

function readLanguage (value: string | null | undefined, fallback: string): string {
  if (value === null || value === undefined || value === '') return fallback
  if (!LANGUAGE_TAG.test(value)) { // also bounds the length: at most 3 + 3 × 9 characters
    throw new BadUserInputError('`language` must be a BCP-47 language tag such as "ru", "en", "de" or "pt-BR".', { argument: 'language' })
  }
  return value
}
