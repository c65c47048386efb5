// One look: a prepared image asked about, from the result cache when the same question was answered
// before, else from the vision service. The flow takes one look; an adaptive identification up to two.
import { createHash } from 'node:crypto'
import type { Caller } from '../callers/caller.ts'
import type { InspectedImage } from '../image/inspect.ts'
import type { PreparedImage } from '../image/pipeline.ts'
import type { IdentifyResult, VisionService } from '../vision/types.ts'
import type { AnswerCache, IdentificationInput } from './types.ts'

export interface LookDeps {
  vision: VisionService
  answers: AnswerCache | null
}

/** What is asked, about which upload, by whom. */
export interface Question {
  caller: Caller
  input: IdentificationInput
  /** The upload as inspected (its sha256: the bytes sent are often the upload itself). */
  upload: InspectedImage
}

/** The model's answer, or a cached one: a cached answer says nothing of the photo's quality (null). */
export type LookResult = Omit<IdentifyResult, 'imageQuality'> & { imageQuality: IdentifyResult['imageQuality'] | null }

export interface Look {
  result: LookResult
  sent: PreparedImage
  /** The result cache's key of this look's question (null when the cache is off). */
  cacheKey: string | null
  cached: boolean
}

/**
 * The result cache's key and a lookup for `sent`: the same image as sent (after orientation, stripping,
 * downscaling) and the same question at the same detail. The image is hashed once, and not at all when
 * it is the upload itself (inspectImage hashed those). A described image (a backend that reads no pixels) is keyed
 * by the upload's hash: what would be sent is a function of the upload and the detail.
 */
export async function lookUp ({ answers }: Pick<LookDeps, 'answers'>, { caller, input, upload }: Question, sent: PreparedImage):
Promise<{ cacheKey: string | null, sentSha256: string | undefined, hit: LookResult | undefined }> {
  const sentSha256 = sent.bytes === input.image
    ? upload.sha256
    : answers === null ? undefined : createHash('sha256').update(sent.bytes).digest('hex')
  if (answers === null || sentSha256 === undefined) return { cacheKey: null, sentSha256, hit: undefined }
  const cacheKey = answers.keyFor({ sentSha256, instructions: input.instructions, language: input.language, detail: sent.detail })
  const found = await answers.lookup(cacheKey, caller)
  const hit = found === undefined ? undefined : { ...found, usage: null, upstreamStatus: null, imageQuality: null }
  return { cacheKey, sentSha256, hit }
}

/** Asks the vision service about `sent` (no cache): `signal` bounds the call (the client's, or a look's share of the time). */
export async function ask (
  { vision }: Pick<LookDeps, 'vision'>, { input }: Question, sent: PreparedImage, sentSha256: string | undefined, signal: AbortSignal
): Promise<LookResult> {
  return await vision.identify({
    image: sent.bytes,
    ...(sentSha256 === undefined ? {} : { sha256: sentSha256 }),
    mimeType: sent.mimeType,
    width: sent.width,
    height: sent.height,
    detail: sent.detail,
    ...(sent.described === true ? { described: true } : {}),
    instructions: input.instructions,
    language: input.language,
    signal
  })
}

/** One look at `sent`: the cache's answer, else the model's. */
export async function lookOnce (deps: LookDeps, question: Question, sent: PreparedImage, onAsking: () => void): Promise<Look> {
  const { cacheKey, sentSha256, hit } = await lookUp(deps, question, sent)
  onAsking()
  if (hit !== undefined) return { result: hit, sent, cacheKey, cached: true }
  const result = await ask(deps, question, sent, sentSha256, question.input.signal)
  return { result, sent, cacheKey, cached: false }
}
