// Thin resolvers: validate the arguments, inspect the image, delegate to the vision service, log one line.
import { randomUUID } from 'node:crypto'
import type { IResolvers, MercuriusContext } from 'mercurius'
import { AppError, badUserInput } from '../errors.ts'
import { LANGUAGE_TAG } from '../config.ts'
import { inspectImage } from '../image/inspect.ts'
import { DEFAULT_INSTRUCTIONS } from '../vision/types.ts'
import { DateTimeScalar, UploadScalar } from './scalars.ts'
import type { Upload } from './upload.ts'
import type { ImageDetail } from '../image/tokens.ts'

export const MAX_INSTRUCTIONS_LENGTH = 2000

interface IdentifyArgs {
  image: Upload
  instructions?: string | null
  language?: string | null
  detail?: 'AUTO' | 'HIGH' | 'LOW' | null
}

export const resolvers: IResolvers = {
  Upload: UploadScalar,
  DateTime: DateTimeScalar,
  Query: {
    vision: (_root, _args, ctx: MercuriusContext) => {
      const { backend, deployment, ready } = ctx.vision.status()
      return { backend, deployment, ready }
    }
  },
  Mutation: {
    identifyVehicle: async (_root, args: IdentifyArgs, ctx: MercuriusContext) => {
      const started = performance.now()
      const id = randomUUID()
      const instructions = readInstructions(args.instructions)
      const language = readLanguage(args.language, ctx.config.vision.language)
      const upload = args.image
      const log = ctx.log.child({ identificationId: id })

      let image
      try {
        image = await inspectImage(upload.buffer)
      } catch (err) {
        log.info({ bytes: upload.buffer.length, code: (err as AppError).code }, 'identification refused: bad image')
        throw err
      }

      const detail = args.detail ? (args.detail.toLowerCase() as ImageDetail) : ctx.config.images.detail
      const summary: Record<string, unknown> = { id, sha256: image.sha256, bytes: image.bytes, mime: image.mimeType, backend: ctx.vision.backend }
      try {
        const sent = await ctx.images.prepare(upload.buffer, image, detail)
        Object.assign(summary, { sentBytes: sent.bytes.length, sentMime: sent.mimeType, sentWidth: sent.width, sentHeight: sent.height, detail })
        const result = await ctx.vision.identify({
          image: sent.bytes,
          mimeType: sent.mimeType,
          width: sent.width,
          height: sent.height,
          detail,
          instructions,
          language,
          signal: ctx.signal
        })
        const durationMs = Math.round(performance.now() - started)
        log.info({ identification: { ...summary, upstreamStatus: result.upstreamStatus, durationMs, usage: result.usage, model: result.model } }, 'identification done')
        return {
          id,
          answer: result.answer,
          language,
          backend: ctx.vision.backend,
          model: result.model,
          image: {
            sha256: image.sha256,
            mimeType: image.mimeType,
            bytes: image.bytes,
            width: image.width,
            height: image.height,
            sentMimeType: sent.mimeType,
            sentBytes: sent.bytes.length,
            sentWidth: sent.width,
            sentHeight: sent.height,
            estimatedImageTokens: sent.estimatedImageTokens
          },
          usage: result.usage,
          durationMs,
          createdAt: new Date()
        }
      } catch (err) {
        const code = err instanceof AppError ? err.code : 'INTERNAL_SERVER_ERROR'
        log.info({ identification: { ...summary, code, durationMs: Math.round(performance.now() - started) } }, 'identification failed')
        throw err
      }
    }
  }
}

function readInstructions (value: string | null | undefined): string {
  const text = value?.trim() ?? ''
  if (text.length > MAX_INSTRUCTIONS_LENGTH) {
    throw badUserInput(`\`instructions\` is ${text.length} characters long; at most ${MAX_INSTRUCTIONS_LENGTH} are allowed.`, { argument: 'instructions' })
  }
  return text === '' ? DEFAULT_INSTRUCTIONS : text
}

function readLanguage (value: string | null | undefined, fallback: string): string {
  if (value === null || value === undefined || value === '') return fallback
  if (!LANGUAGE_TAG.test(value)) { // also bounds the length: at most 3 + 3 × 9 characters
    throw badUserInput('`language` must be a BCP-47 language tag such as "ru", "en", "de" or "pt-BR".', { argument: 'language' })
  }
  return value
}
