// History's metrics (records, result cache), declared by the feature they measure.
import { Counter } from 'prom-client'
import type { Metrics } from '../metrics/registry.ts'

export interface HistoryMetrics {
  records: Counter<'result'>
  resultCache: Counter<'result'>
}

/** Declared whether history is on or not, so /metrics lists the same series either way. */
export function historyMetrics (metrics: Metrics): HistoryMetrics {
  return {
    records: new Counter({
      name: 'agrivision_history_records_total',
      help: 'History records by what became of them: written, dropped (buffer full while the database was down), or rejected (the database refused their data).',
      labelNames: ['result'] as const,
      registers: [metrics.registry]
    }),
    resultCache: new Counter({
      name: 'agrivision_result_cache_lookups_total',
      help: 'Result cache lookups by result (hit, miss).',
      labelNames: ['result'] as const,
      registers: [metrics.registry]
    })
  }
}
