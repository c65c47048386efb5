// The one log line per identification operators read ('identification done' / 'identification
// failed'), as a subscriber of the identification events. Never the image, the instructions or a token.
import type { FastifyBaseLogger } from 'fastify'
import type { IdentificationEvents } from './events.ts'

/** Who asked and through which request: the same fields as the request's own log lines. */
const origin = (event: { requestId: string, caller: { id: string, kind: string } }) =>
  ({ reqId: event.requestId, caller: event.caller.id, callerKind: event.caller.kind })

export function logIdentifications (events: IdentificationEvents, log: FastifyBaseLogger): void {
  events.on('completed', (event) => {
    const { identification: result, upstreamStatus } = event
    const { image } = result
    log.info({
      ...origin(event),
      identification: {
        id: event.id,
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
        upstreamStatus,
        usage: result.usage,
        durationMs: result.durationMs
      }
    }, 'identification done')
  })
  events.on('failed', (event) => {
    const { image } = event
    log.info({
      ...origin(event),
      identification: {
        id: event.id,
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
    }, 'identification failed')
  })
}
