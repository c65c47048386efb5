// `app.identification`: the one door to an identification, for every entry point (the GraphQL mutation
// today, bulk jobs next). It holds what the flow needs (vision, images, events, the slots), so an entry
// point cannot forget any of them; features wrap it (`around`: the Idempotency-Key) or feed it
// (`useAnswers`: the result cache) instead of being called from the entry points.
import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ImagePipeline } from '../image/pipeline.ts'
import type { Admission } from '../limits/admission.ts'
import type { VisionService } from '../vision/types.ts'
import type { AdaptiveOptions } from './adaptive.ts'
import type { IdentificationEvents } from './events.ts'
import { identifyVehicle, type IdentificationOrigin } from './flow.ts'
import type { AnswerCache, Identification, IdentificationInput } from './types.ts'
import {
  announceAnswer, announceFailure, prepareIdentification, type PreparedCall, type PreparedIdentification, type PreparedOutcome,
  type PrepareOptions
} from './prepared.ts'

export type { PreparedCall, PreparedIdentification, PreparedOutcome, PrepareOptions }

/** One identification asked for: by whom, what, and through which HTTP request when there is one. */
export interface IdentificationCall {
  origin: IdentificationOrigin
  input: IdentificationInput
  log: FastifyBaseLogger
  /** The HTTP exchange carrying it (its headers, e.g. Idempotency-Key); none for a bulk job's item. */
  http?: { request: FastifyRequest, reply: FastifyReply }
}

/** Wraps every identification: may answer without `next` (a replay), or run it and act on its outcome. */
export type AroundIdentification = (call: IdentificationCall, next: () => Promise<Identification>) => Promise<Identification>

export interface IdentificationService {
  identify (call: IdentificationCall): Promise<Identification>
  /**
   * The image half of an identification (a bulk item asked of Global Batch): inspected and prepared as the flow
   * does, no vision slot held. A photo that cannot be is announced failed (with `call`'s id) and the error thrown.
   */
  prepare (call: PreparedCall, image: Buffer, options?: PrepareOptions): Promise<PreparedIdentification>
  /** Announces a prepared item's answer or failure as the flow would (history records it); the Identification when answered. */
  answered (
    call: PreparedCall, prepared: PreparedIdentification, outcome: PreparedOutcome, durationMs?: number
  ): Promise<Identification | undefined>
  /** Announces an item failed before it could be prepared (an archive entry refused: `error`'s code). */
  failed (call: PreparedCall, error: unknown, bytes: number): Promise<void>
  /** Adds a wrapper; the first added is the outermost. Before the server is ready only. */
  around (wrap: AroundIdentification): void
  /** The result cache the flow asks before the model (one at most). Before the server is ready only. */
  useAnswers (cache: AnswerCache): void
}

declare module 'fastify' {
  interface FastifyInstance {
    identification: IdentificationService
  }
}

export interface IdentificationOptions {
  vision: VisionService
  images: ImagePipeline
  events: IdentificationEvents
  admission: Admission
  /** ADAPTIVE detail: VISION_ADAPTIVE_MIN_CONFIDENCE and both looks' time budget. */
  adaptive: AdaptiveOptions
}

async function identificationPlugin (app: FastifyInstance, deps: IdentificationOptions): Promise<void> {
  const wrappers: AroundIdentification[] = []
  let answers: AnswerCache | null = null
  let ready = false
  app.addHook('onReady', async () => { ready = true })
  const open = (what: string): void => {
    if (ready) throw new Error(`identification.${what}: only while the app is being built`)
  }

  const run = async (call: IdentificationCall, index: number): Promise<Identification> => {
    const wrap = wrappers[index]
    if (wrap === undefined) return await identifyVehicle({ ...deps, answers }, call.origin, call.input)
    return await wrap(call, async () => await run(call, index + 1))
  }

  app.decorate('identification', {
    identify: async (call) => await run(call, 0),
    prepare: async (call, image, options) => await prepareIdentification(deps, call, image, options),
    answered: async (call, prepared, outcome, durationMs) => await announceAnswer(deps, call, prepared, outcome, durationMs),
    failed: async (call, error, bytes) => { await announceFailure(deps, call, error, bytes, 0) },
    around (wrap) {
      open('around')
      wrappers.push(wrap)
    },
    useAnswers (cache) {
      open('useAnswers')
      if (answers !== null) throw new Error('identification.useAnswers: a result cache is already in use')
      answers = cache
    }
  } satisfies IdentificationService)
}

export default fp(identificationPlugin, { name: 'identification', fastify: '5.x' })
