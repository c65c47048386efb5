// The one log line per identification operators read ('identification done' / 'identification
// failed'), as a subscriber of the identification events. Never the image, the instructions or a token.
import type { FastifyBaseLogger } from 'fastify'
import type { IdentificationEvents } from './events.ts'

export function logIdentifications (events: IdentificationEvents, log: FastifyBaseLogger): void {
  events.on('completed', ({ id, caller, requestId, backend, detail, identification: result, upstreamStatus }) => {
    const { image } = result
    log.info({
      reqId: requestId,
      caller: caller.id,
      callerKind: caller.kind,
      identification: {
        id,
        bytes: image.bytes,
        backend,
        detail,
        sha256: image.sha256,
        mime: image.mimeType,
        width: image.width,
        height: image.height,
        sentBytes: image.sentBytes,
        sentMime: image.sentMimeType,
        sentWidth: image.sentWidth,
        sentHeight: image.sentHeight,
        model: result.model,
        upstreamStatus,
        usage: result.usage,
        durationMs: result.durationMs
      }
    }, 'identification done')
  })
  events.on('failed', ({ id, caller, requestId, backend, code, bytes, detail, durationMs, image }) => {
    log.info({
      reqId: requestId,
      caller: caller.id,
      callerKind: caller.kind,
      identification: {
        id,
        bytes,
        backend,
        detail,
        sha256: image?.sha256,
        mime: image?.mimeType,
        width: image?.width,
        height: image?.height,
        sentBytes: image?.sentBytes,
        sentMime: image?.sentMimeType,
        code,
        durationMs
      }
    }, 'identification failed')
  })
}
