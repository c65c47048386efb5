// Identifying a vehicle (Mutation.identifyVehicle) and the vision backend's state (Query.vision): the
// arguments checked, then app.identification, the one door to an identification.
import type { IResolvers } from 'mercurius'
import { BadUserInputError } from '../errors.ts'
import { LANGUAGE_TAG } from '../vision/language.ts'
import type { RequestedDetail } from '../image/tokens.ts'
import { DEFAULT_INSTRUCTIONS, type VisionService } from '../vision/types.ts'
import { ANONYMOUS, requireRole } from '../callers/caller.ts'
import { callerKey } from '../http/requests.ts'
import type { ImageDetail as SchemaImageDetail, Resolvers } from '../graphql/generated/schema-types.ts'

export const MAX_INSTRUCTIONS_LENGTH = 2000

const IMAGE_DETAIL: Record<SchemaImageDetail, RequestedDetail> = { AUTO: 'auto', HIGH: 'high', LOW: 'low', ADAPTIVE: 'adaptive' }

export interface IdentifyOptions {
  vision: VisionService
  /** The answer's language when the caller names none (VISION_LANGUAGE). */
  language: string
  /** How closely the model looks when the caller does not say (VISION_IMAGE_DETAIL). */
  detail: RequestedDetail
}

// Typed from the SDL (src/graphql/generated/schema-types.ts, `npm run codegen`): the arguments, the
// context, and each return value against its GraphQL type (so the domain `Identification` must fit
// the schema's `Identification`, field by field).
export function identifyResolvers ({ vision, language, detail }: IdentifyOptions): IResolvers {
  const resolvers: Resolvers = {
    Query: {
      vision: (_root, _args, ctx) => {
        const { backend, deployment, ready } = vision.status()
        // As /health/ready: under pressure, new identifications are refused, so it cannot take one.
        // backends: read by its own resolver below, for the Admin role only.
        return { backend, deployment, ready: ready && !ctx.underPressure(), backends: [] }
      }
    },
    Mutation: {
      identifyVehicle: async (_root, args, ctx) => {
        const caller = ctx.caller ?? ANONYMOUS
        requireRole(caller, 'Identify')
        const input = {
          image: args.image.buffer,
          instructions: readInstructions(args.instructions),
          language: readLanguage(args.language, language),
          detail: readDetail(args.detail, detail),
          signal: ctx.signal
        }
        const { request, reply } = ctx
        const origin = { caller, requestId: ctx.requestId, share: callerKey(request) }
        const call = { origin, input, log: ctx.log, ...(reply === undefined ? {} : { http: { request, reply } }) }
        try {
          // The Idempotency-Key (a replay, a 409/422) is history's wrapper around it (src/history/idempotency-header.ts).
          return await request.server.identification.identify(call)
        } finally {
          args.image.release() // the flow is over (whatever keeps the bytes longer copies them): the buffer is reused
        }
      }
    },
    VisionStatus: {
      // Routing state (holds, breakers) tells an outsider when the service is weakest: operators only.
      backends: (_parent, _args, ctx) => {
        requireRole(ctx.caller ?? ANONYMOUS, 'Admin')
        return vision.backends?.() ?? []
      }
    }
  }
  return resolvers as IResolvers
}

function readInstructions (value: string | null | undefined): string {
  const text = value?.trim() ?? ''
  if (text.length > MAX_INSTRUCTIONS_LENGTH) {
    throw new BadUserInputError(`\`instructions\` is ${text.length} characters long; at most ${MAX_INSTRUCTIONS_LENGTH} are allowed.`, { argument: 'instructions' })
  }
  return text === '' ? DEFAULT_INSTRUCTIONS : text
}

function readDetail (value: SchemaImageDetail | null | undefined, fallback: RequestedDetail): RequestedDetail {
  return value === null || value === undefined ? fallback : IMAGE_DETAIL[value]
}

function readLanguage (value: string | null | undefined, fallback: string): string {
  if (value === null || value === undefined || value === '') return fallback
  if (!LANGUAGE_TAG.test(value)) { // also bounds the length: at most 3 + 3 × 9 characters
    throw new BadUserInputError('`language` must be a BCP-47 language tag such as "ru", "en", "de" or "pt-BR".', { argument: 'language' })
  }
  return value
}
