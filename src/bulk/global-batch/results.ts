// A batch's output and error files read back into one outcome per item, as the online path would have
// ended: status 200 → the same completion reading (completion.ts) and answer check (answer-schema.ts);
// any other status → the same error codes as an online upstream error (upstream-errors.ts, through the
// SDK's own APIError for that status and body). Lines come in any order; a line for an id not in the
// chunk, or for an id already answered, is ignored and counted; a line that cannot be read is counted,
// and its item (if its id can be told) ends as an invalid response. Items with no line at all are the
// caller's to find (`missing`).
import type { FastifyBaseLogger } from 'fastify'
import { APIError } from 'openai'
import { AppError, UpstreamInvalidResponseError, UpstreamUnavailableError } from '../../errors.ts'
import { AnswerShapeError, parseAnswer, type VisionAnswer } from '../../vision/answer-schema.ts'
import { readCompletion } from '../../vision/completion.ts'
import { mapUpstreamError } from '../../vision/upstream-errors.ts'
import { redactTokens } from '../../azure/token-provider.ts'
import type { TokenUsage } from '../../vision/types.ts'
import type { Line } from './lines.ts'

export interface BatchAnswer extends VisionAnswer {
  model: string
  usage: TokenUsage | null
  upstreamStatus: number
}

export type ItemOutcome =
  | { itemId: string, ok: true, result: BatchAnswer }
  /** `retryOnline`: whether asking again online may change the outcome (not for a refusal or filtered content). */
  | { itemId: string, ok: false, error: AppError, retryOnline: boolean }

export interface ResultStats {
  /** Lines whose custom_id is not one of the chunk's items (or has none). */
  unknown: number
  /** Lines for an item answered earlier in the files. */
  repeated: number
  /** Lines that are not JSON of the expected shape, or over the length bound. */
  unreadable: number
}

export interface ReadResultsOptions {
  /** The chunk's item ids: lines for others are ignored. */
  itemIds: ReadonlySet<string>
  /** The batch deployment, for messages and logs. */
  deployment: string
  /** Outcomes handed over at a time (the caller records each page before reading on). */
  pageSize?: number
  log?: FastifyBaseLogger
  /** Counts, updated as lines are read. */
  stats?: ResultStats
}

/** Codes that another try online will not change. */
const FINAL_CODES = new Set(['CONTENT_FILTERED', 'MODEL_REFUSED', 'BAD_USER_INPUT'])

/** Reads lines (the output file's, then the error file's) into pages of outcomes, one per item at most. */
export async function * readResults (
  files: Iterable<AsyncIterable<Line>>, options: ReadResultsOptions
): AsyncGenerator<ItemOutcome[]> {
  const { itemIds, deployment, log } = options
  const pageSize = options.pageSize ?? 500
  const stats = options.stats ?? { unknown: 0, repeated: 0, unreadable: 0 }
  const seen = new Set<string>()
  let page: ItemOutcome[] = []
  for (const lines of files) {
    for await (const line of lines) {
      const outcome = readLine(line)
      if (outcome === undefined) continue
      page.push(outcome)
      if (page.length >= pageSize) {
        yield page
        page = []
      }
    }
  }
  if (page.length > 0) yield page

  function readLine (line: Line): ItemOutcome | undefined {
    if (line.kind === 'too-long') {
      stats.unreadable++
      log?.warn({ bytes: line.bytes }, 'a batch result line is over the length bound: its item ends as an invalid response')
      const id = line.customId
      return id !== null && claim(id)
        ? { itemId: id, ok: false, error: new UpstreamInvalidResponseError('Azure OpenAI\'s batch answer for this photo was too long to read.'), retryOnline: true }
        : undefined
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(line.text)
    } catch {
      stats.unreadable++
      log?.warn({ bytes: line.text.length }, 'a batch result line is not JSON: ignored')
      return undefined
    }
    if (!isRecord(parsed) || typeof parsed.custom_id !== 'string') {
      stats.unreadable++
      return undefined
    }
    const itemId = parsed.custom_id
    if (!claim(itemId)) return undefined
    return outcomeOf(itemId, parsed)
  }

  /** True once per item of the chunk: the first line for it counts. */
  function claim (itemId: string): boolean {
    if (!itemIds.has(itemId)) { stats.unknown++; return false }
    if (seen.has(itemId)) { stats.repeated++; return false }
    seen.add(itemId)
    return true
  }

  function outcomeOf (itemId: string, line: Record<string, unknown>): ItemOutcome {
    const response = isRecord(line.response) ? line.response : undefined
    const status = typeof response?.status_code === 'number' ? response.status_code : undefined
    if (status === 200 && line.error == null) {
      try {
        const read = readCompletion(response?.body, 200, deployment, log)
        const answer = parseAnswer(read.content)
        return { itemId, ok: true, result: { ...answer, model: read.model, usage: read.usage, upstreamStatus: 200 } }
      } catch (err) {
        if (err instanceof AnswerShapeError) {
          // Online asks once more; here the online retry does.
          return failed(itemId, new UpstreamInvalidResponseError(`Azure OpenAI's batch answer was not JSON of the requested shape (${err.message}).`, { cause: err }))
        }
        return failed(itemId, err instanceof AppError ? err : new UpstreamInvalidResponseError('Azure OpenAI\'s batch answer could not be read.', { cause: err }))
      }
    }
    // An error line: the status and body Azure gives (response.body.error), or the line's own error.
    const body = isRecord(response?.body) ? response.body : undefined
    const error = isRecord(body?.error) ? body.error : isRecord(line.error) ? line.error : undefined
    const message = typeof error?.message === 'string' ? redactTokens(error.message.slice(0, 200)) : undefined
    if (status === undefined || status === 200) {
      // No HTTP status: the batch could not run the line (e.g. batch_expired, batch_cancelled).
      const code = typeof error?.code === 'string' ? error.code.slice(0, 64).replace(/[^\w.-]/g, '?') : 'unknown'
      return failed(itemId, new UpstreamUnavailableError(`Azure OpenAI's batch did not answer this photo (${code}).`))
    }
    // The SDK's own error for this status and body: the online path's mapping applies unchanged.
    const errorBody = error === undefined ? undefined : { error: { ...error, ...(message === undefined ? {} : { message }) } }
    const apiError = APIError.generate(status, errorBody, message, new Headers())
    return failed(itemId, mapUpstreamError(apiError, { deployment, timeoutMs: 0, timedOut: false, clientGone: false }))
  }

  function failed (itemId: string, error: AppError): ItemOutcome {
    return { itemId, ok: false, error, retryOnline: !FINAL_CODES.has(error.code) }
  }
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
