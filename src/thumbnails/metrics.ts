// Thumbnails' metrics, declared by the feature they measure.
import { Counter } from 'prom-client'
import type { Metrics } from '../metrics/registry.ts'

export type ThumbnailResult = 'made' | 'skipped' | 'failed'

/** Declared whether thumbnails are on or not, so /metrics lists the same series either way. */
export function thumbnailMetrics (metrics: Metrics): Counter<'result'> {
  return new Counter({
    name: 'agrivision_thumbnails_total',
    help: 'Thumbnails by result: made, skipped (queue full under load), failed (decode or database).',
    labelNames: ['result'] as const,
    registers: [metrics.registry]
  })
}
