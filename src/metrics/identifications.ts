// Identification metrics, as a subscriber of the identification events.
import type { IdentificationEvents } from '../identification/events.ts'
import type { Metrics } from './registry.ts'

export function countIdentifications (events: IdentificationEvents, metrics: Metrics): void {
  events.on('started', ({ bytes }) => {
    metrics.imageBytes.inc({ direction: 'received' }, bytes)
  })
  events.on('completed', ({ backend, identification, upstreamMs }) => {
    metrics.imageBytes.inc({ direction: 'sent' }, identification.image.sentBytes)
    if (!identification.cached) metrics.upstreamDuration.observe({ outcome: 'OK', backend }, upstreamMs / 1000)
    metrics.identifications.inc({ outcome: 'OK', backend })
    if (identification.usage) {
      metrics.modelTokens.inc({ kind: 'prompt' }, identification.usage.promptTokens)
      metrics.modelTokens.inc({ kind: 'completion' }, identification.usage.completionTokens)
    }
  })
  events.on('failed', ({ backend, code, upstreamMs, image }) => {
    if (image?.sentBytes !== undefined) metrics.imageBytes.inc({ direction: 'sent' }, image.sentBytes)
    if (upstreamMs !== undefined) metrics.upstreamDuration.observe({ outcome: code, backend }, upstreamMs / 1000)
    metrics.identifications.inc({ outcome: code, backend })
  })
}
