// Identification metrics, as a subscriber of the identification events.
import type { IdentificationEvents } from './events.ts'
import { labelled, type Metrics } from '../metrics/registry.ts'

export function countIdentifications (events: IdentificationEvents, metrics: Metrics): void {
  // Label children resolved once (labelled): these run on every identification.
  const received = metrics.imageBytes.labels('received')
  const sent = metrics.imageBytes.labels('sent')
  const promptTokens = metrics.modelTokens.labels('prompt')
  const completionTokens = metrics.modelTokens.labels('completion')
  const upstream = labelled(metrics.upstreamDuration)
  const outcomes = labelled(metrics.identifications)
  events.on('started', ({ bytes }) => {
    received.inc(bytes)
  })
  events.on('completed', ({ backend, identification, upstreamMs }) => {
    sent.inc(identification.image.sentBytes)
    if (!identification.cached) upstream('OK', backend).observe(upstreamMs / 1000)
    outcomes('OK', backend).inc()
    if (identification.usage) {
      promptTokens.inc(identification.usage.promptTokens)
      completionTokens.inc(identification.usage.completionTokens)
    }
  })
  events.on('failed', ({ backend, code, upstreamMs, image }) => {
    if (image?.sentBytes !== undefined) sent.inc(image.sentBytes)
    if (upstreamMs !== undefined) upstream(code, backend).observe(upstreamMs / 1000)
    outcomes(code, backend).inc()
  })
}
