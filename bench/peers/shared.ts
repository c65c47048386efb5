// What every peer server shares, so the three do the same work per request:
// the schema file, the operation, `benchVision`, and (for the two foreign peers) the resolver body.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { GraphQLScalarType } from 'graphql'
import { LANGUAGE_TAG } from '../../src/vision/language.ts'
import { loadSchemaSDL } from '../../src/graphql/schema.ts'
import { inspectImage } from '../../src/image/inspect.ts'
import { createSimulatedVision, simulatedAnswer, simulatedImageQuality, simulatedVehicles } from '../../src/vision/simulated.ts'
import { DEFAULT_INSTRUCTIONS, type IdentifyRequest, type IdentifyResult, type VisionService } from '../../src/vision/types.ts'

export const MAX_UPLOAD_BYTES = 20 * 1024 * 1024

/** The whole SDL (src/**\/*.graphql), read the way our service reads it. */
export const typeDefs = loadSchemaSDL()

export { IDENTIFY, PREFLIGHT_HEADERS } from '../lib/operation.ts'

let encodedChars = 0

/**
 * The simulated vision backend for benchmarks: like the Azure backend it base64-encodes the image
 * into a data URL (and holds it for `latencyMs`, as a pending upstream call would), then answers
 * with `simulatedAnswer`.
 */
export function createBenchVision ({ latencyMs = 0 }: { latencyMs?: number } = {}): VisionService {
  return {
    backend: 'SIMULATED',
    async identify (request: IdentifyRequest): Promise<IdentifyResult> {
      const url = `data:${request.mimeType};base64,${request.image.toString('base64')}`
      if (latencyMs > 0) await sleep(latencyMs, undefined, { signal: request.signal })
      encodedChars += url.length // keep the string alive and used
      return {
        answer: simulatedAnswer(request),
        vehicles: simulatedVehicles(request),
        imageQuality: simulatedImageQuality(request),
        model: 'simulated',
        usage: null,
        upstreamStatus: null,
        backendName: null
      }
    },
    status () {
      return { backend: 'SIMULATED', deployment: null, ready: true }
    }
  }
}

/**
 * The peers' vision service: BENCH_VISION=simulated (the headline, as `npm start` runs with no Azure): the simulated
 * backend itself, no data URL; otherwise benchVision (a data URL, as the Azure backend makes).
 */
export const benchVision: VisionService = process.env.BENCH_VISION === 'simulated' ? createSimulatedVision() : createBenchVision()

export function encodedCharCount (): number {
  return encodedChars
}

export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  serialize (value) {
    if (value instanceof Date) return value.toISOString()
    throw new TypeError('DateTime cannot represent a non-Date value')
  }
})

export interface IdentifyArgs {
  instructions?: string | null
  language?: string | null
}

const DEFAULT_LANGUAGE = 'ru'

/**
 * The resolver body for the foreign peers: validate the arguments, inspect the image, hand it to the
 * vision service. Ours also runs its image pipeline (src/image/pipeline.ts) in between; the scenario 1
 * photo already fits what the model looks at and carries no metadata, so ours sends it unchanged too.
 */
export async function identify (buffer: Buffer, args: IdentifyArgs, vision: VisionService, signal: AbortSignal) {
  const started = performance.now()
  const id = randomUUID()
  const instructions = args.instructions?.trim() || DEFAULT_INSTRUCTIONS
  if (instructions.length > 2000) throw new Error('`instructions` is too long.')
  const language = args.language || DEFAULT_LANGUAGE
  if (language.length > 35 || !LANGUAGE_TAG.test(language)) throw new Error('`language` must be a BCP-47 language tag.')

  const image = await inspectImage(buffer)
  const result = await vision.identify({
    image: buffer,
    mimeType: image.mimeType,
    width: image.width,
    height: image.height,
    detail: 'auto', // the foreign peers send the upload as is (no image pipeline), as for ours' default
    instructions,
    language,
    signal
  })
  return {
    id,
    answer: result.answer,
    vehicles: result.vehicles,
    language,
    backend: vision.backend,
    model: result.model,
    image: { sha256: image.sha256, mimeType: image.mimeType, bytes: image.bytes, width: image.width, height: image.height },
    usage: result.usage,
    // What the shared operation now also asks for (history's fields): the peers keep no history and no cache.
    cached: false,
    callerId: 'anonymous',
    durationMs: Math.round(performance.now() - started),
    createdAt: new Date()
  }
}

/** The port run.ts hands each server child. */
export function benchPort (): number {
  const port = Number(process.env.BENCH_PORT)
  if (!Number.isInteger(port) || port <= 0) throw new Error('BENCH_PORT must be set to the port to listen on')
  return port
}

/** Tell run.ts we listen (over IPC) and print it; stop cleanly on its 'stop' (so --cpu-prof is written). */
export function announce (name: string, port: number, close: () => Promise<void>): void {
  process.stdout.write(`${name} listening on http://127.0.0.1:${port}\n`)
  process.send?.({ type: 'listening', port })
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'stop') {
      close().finally(() => process.exit(0))
    }
  })
  process.on('disconnect', () => process.exit(0))
}
