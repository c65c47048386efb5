// Identification metrics, as a subscriber of the identification events.
import { Counter } from 'prom-client'
import type { IdentificationEvents } from './events.ts'
import { labelled, type Metrics } from '../metrics/registry.ts'

/** ADAPTIVE detail's own metrics: how many looks, why a second one, the image tokens it saved against HIGH. */
function adaptiveMetrics (metrics: Metrics) {
  const registers = [metrics.registry]
  return {
    looks: new Counter({
      name: 'agrivision_identification_looks_total',
      help: 'Successful identifications by how many times the model looked (2: an ADAPTIVE second look at HIGH).',
      labelNames: ['looks'] as const,
      registers
    }),
    reasons: new Counter({
      name: 'agrivision_second_look_reasons_total',
      help: 'ADAPTIVE second looks by reason (no_vehicle, low_confidence, image_unclear).',
      labelNames: ['reason'] as const,
      registers
    }),
    imageTokens: new Counter({
      name: 'agrivision_adaptive_image_tokens_total',
      help: 'ADAPTIVE identifications\' image tokens by the tile rule: sent (every look), high_only (had HIGH alone been asked). Saved: high_only - sent.',
      labelNames: ['kind'] as const,
      registers
    }),
    failures: new Counter({
      name: 'agrivision_second_look_failures_total',
      help: 'ADAPTIVE second looks that failed (answered with the first look), by error code.',
      labelNames: ['code'] as const,
      registers
    })
  }
}

export function countIdentifications (events: IdentificationEvents, metrics: Metrics): void {
  // Label children resolved once (labelled): these run on every identification.
  const received = metrics.imageBytes.labels('received')
  const sent = metrics.imageBytes.labels('sent')
  const promptTokens = metrics.modelTokens.labels('prompt')
  const completionTokens = metrics.modelTokens.labels('completion')
  const upstream = labelled(metrics.upstreamDuration)
  const outcomes = labelled(metrics.identifications)
  const adaptive = adaptiveMetrics(metrics)
  const looks = labelled(adaptive.looks)
  const reasons = labelled(adaptive.reasons)
  const failures = labelled(adaptive.failures)
  const sentImageTokens = adaptive.imageTokens.labels('sent')
  const highOnlyImageTokens = adaptive.imageTokens.labels('high_only')
  events.on('started', ({ bytes }) => {
    received.inc(bytes)
  })
  events.on('completed', ({ backend, identification, upstreamMs, adaptive: report }) => {
    // A described image (SIMULATED's ADAPTIVE LOW look) was never encoded: no bytes sent.
    if (identification.image.sentBytes !== null) sent.inc(identification.image.sentBytes)
    looks(identification.looks).inc()
    if (report !== undefined) {
      if (report.secondLook !== null) reasons(report.secondLook).inc()
      if (report.secondLookFailure !== null) failures(report.secondLookFailure).inc()
      sentImageTokens.inc(report.sentImageTokens)
      highOnlyImageTokens.inc(report.highOnlyImageTokens)
    }
    if (!identification.cached) upstream('OK', backend).observe(upstreamMs / 1000)
    outcomes('OK', backend).inc()
    if (identification.usage) {
      promptTokens.inc(identification.usage.promptTokens)
      completionTokens.inc(identification.usage.completionTokens)
    }
  })
  events.on('failed', ({ backend, code, upstreamMs, image }) => {
    if (image?.sentBytes != null) sent.inc(image.sentBytes)
    if (upstreamMs !== undefined) upstream(code, backend).observe(upstreamMs / 1000)
    outcomes(code, backend).inc()
  })
}
