// What the limits measure, declared by them in the app's registry: the wait for a vision slot, the slots and
// upload bytes in use (gauges read at scrape time), and their refusals. The refusals counter itself is shared
// (src/metrics/registry.ts): the rate limits and load shedding count into it too, by reason.
import { Histogram } from 'prom-client'
import type { Metrics } from '../metrics/registry.ts'
import type { AdmissionGate, AdmissionObserver } from './admission.ts'
import type { UploadBudget, UploadBudgetRefusal } from './receiving.ts'

export interface LimitsMetrics {
  /** What the admission gate reports: waits and refusals. */
  admission: AdmissionObserver
  /** What the upload budget reports: refusals. */
  uploadRefused: (reason: UploadBudgetRefusal) => void
  /** Gauges of what the gate and the budget hold, read at every scrape. */
  watch: (admission: AdmissionGate, uploads: UploadBudget) => void
}

export function limitsMetrics (metrics: Metrics): LimitsMetrics {
  const queueWait = new Histogram({
    name: 'agrivision_admission_wait_seconds',
    help: 'Time identifications waited for a slot.',
    buckets: [0, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
    registers: [metrics.registry]
  })
  return {
    admission: {
      waited: (ms) => { queueWait.observe(ms / 1000) },
      refused: (reason) => { metrics.refusals.inc({ reason }) }
    },
    uploadRefused: (reason) => { metrics.refusals.inc({ reason }) },
    watch (admission, uploads) {
      metrics.gauge('agrivision_admission_active', 'Identifications holding a slot.', () => admission.active)
      metrics.gauge('agrivision_admission_queued', 'Identifications waiting for a slot.', () => admission.queued)
      metrics.gauge('agrivision_upload_bytes_in_flight', 'Bytes reserved by uploads being received or in progress.', () => uploads.bytes)
      metrics.gauge('agrivision_uploads_in_flight', 'Uploads being received or in progress.', () => uploads.uploads)
    }
  }
}
