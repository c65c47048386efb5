// One access-log line per request ('request completed', or 'request errored' at error), as production services
// log: the request (method, redacted URL, address), its status and time and, for a request that ran an
// identification, the identification's fields. Fastify's own 'incoming request' line is not written (it doubled
// the cost of logging for no field the access line lacks); its error lines are kept. The identification's fields
// come from the identification events; an identification no request line will carry (its request id unknown
// or shared by two requests in flight) gets its own line ('identification done' / 'identification failed').
// Never the image, the instructions or a token.
import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify'
import type { IdentificationCompleted, IdentificationEvents, IdentificationFailed } from './events.ts'

type Fields = Record<string, unknown>

const LOGGED = Symbol('identification fields for the access line')
/** A request id two requests in flight share (ids may come from x-request-id): theirs get their own lines. */
const SHARED = Symbol('shared request id')
const SWEEP_MIN = 1024

interface Tracked { [LOGGED]?: Fields }
interface InFlight { request: FastifyRequest, reply: FastifyReply }

/**
 * Fastify's request logging with one line per request: 'request completed' (at info; 'request errored' at error)
 * carrying what the request was, its status, its time and the identification it ran.
 */
export class AccessLog extends LogController {
  /** Requests in flight by id, while they may run an identification (POSTs). */
  readonly #inFlight = new Map<string, InFlight | typeof SHARED>()
  /** Size at which requests that ended without a response (the client went away) are swept out. */
  #sweepAt = SWEEP_MIN

  override incomingRequest (request: FastifyRequest, reply: FastifyReply): void {
    if (request.method !== 'POST') return
    const known = this.#inFlight.get(request.id)
    this.#inFlight.set(request.id, known === undefined ? { request, reply } : SHARED)
    if (this.#inFlight.size >= this.#sweepAt) this.#sweep()
  }

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (request.method === 'POST') {
      const known = this.#inFlight.get(request.id)
      if (known !== undefined && (known === SHARED || known.request === request)) this.#inFlight.delete(request.id)
    }
    const identification = (request as Tracked)[LOGGED]
    const line = { req: request, res: reply, responseTime: reply.elapsedTime, ...(identification ? { identification } : {}) }
    if (error) reply.log.error({ ...line, err: error }, 'request errored')
    else reply.log.info(line, 'request completed')
  }

  /** Gives the identification's fields to its request's line; false when none will carry them. */
  attach (requestId: string, fields: Fields): boolean {
    const known = this.#inFlight.get(requestId)
    if (known === undefined || known === SHARED) return false
    const request = known.request as FastifyRequest & Tracked
    request[LOGGED] = fields
    return true
  }

  #sweep (): void {
    for (const [id, known] of this.#inFlight) {
      if (known === SHARED || known.reply.raw.closed) this.#inFlight.delete(id)
    }
    this.#sweepAt = Math.max(SWEEP_MIN, 2 * this.#inFlight.size)
  }
}

/** Who asked and through which request: the same fields as the request's own log lines. */
const origin = (event: { requestId: string, caller: { id: string, kind: string } }) =>
  ({ reqId: event.requestId, caller: event.caller.id, callerKind: event.caller.kind })

function completedFields (event: IdentificationCompleted): Fields {
  const { identification: result, upstreamStatus } = event
  const { image } = result
  return {
    id: event.id,
    outcome: 'OK',
    bytes: image.bytes,
    backend: event.backend,
    detail: event.detail,
    sha256: image.sha256,
    mime: image.mimeType,
    width: image.width,
    height: image.height,
    sentBytes: image.sentBytes,
    sentMime: image.sentMimeType,
    sentWidth: image.sentWidth,
    sentHeight: image.sentHeight,
    model: result.model,
    vehicles: result.vehicles.length,
    cached: result.cached,
    detailUsed: result.detailUsed,
    looks: result.looks,
    ...(event.adaptive?.secondLook == null ? {} : { secondLook: event.adaptive.secondLook }),
    upstreamStatus,
    usage: result.usage,
    durationMs: result.durationMs
  }
}

function failedFields (event: IdentificationFailed): Fields {
  const { image } = event
  return {
    id: event.id,
    outcome: event.code,
    bytes: event.bytes,
    backend: event.backend,
    detail: event.detail,
    sha256: image?.sha256,
    mime: image?.mimeType,
    width: image?.width,
    height: image?.height,
    sentBytes: image?.sentBytes,
    sentMime: image?.sentMimeType,
    code: event.code,
    durationMs: event.durationMs
  }
}

/**
 * The identification's fields on its request's access line (`access`), or on a line of their own when no request
 * line will carry them (no `access`: a logger made elsewhere; an unknown or shared request id).
 */
export function logIdentifications (events: IdentificationEvents, log: FastifyBaseLogger, access: AccessLog | null): void {
  events.on('completed', (event) => {
    const failure = event.adaptive?.secondLookFailure
    if (failure != null) {
      // Once per identification: the caller got the first look's answer, so nothing else says it.
      log.warn({ ...origin(event), id: event.id, code: failure }, 'the second look failed; answered with the first look')
    }
    const fields = completedFields(event)
    if (access?.attach(event.requestId, fields) !== true) log.info({ ...origin(event), identification: fields }, 'identification done')
  })
  events.on('failed', (event) => {
    const fields = failedFields(event)
    if (access?.attach(event.requestId, fields) !== true) log.info({ ...origin(event), identification: fields }, 'identification failed')
  })
}
