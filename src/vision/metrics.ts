// The vision service's metrics. Per deployment (AZURE_OPENAI_BACKENDS): every call to a backend by outcome and
// its latency, and each backend's routing state at scrape time. Alert on: a backend OPEN for long, HELD most
// of the time (its quota is too small), or `rate_limited` outcomes on every backend at once (callers see 429s).
import { Counter, Gauge, Histogram } from 'prom-client'
import type { Metrics } from '../metrics/registry.ts'
import type { VisionService } from './types.ts'

const STATES = ['CLOSED', 'HELD', 'OPEN', 'HALF_OPEN'] as const

/** Every vision metric, the providers' own included; returns the function that stops measuring (the service may outlive the app). */
export function measureVision (vision: VisionService, metrics: Metrics): () => void {
  // The token counters (agrivision_token_fetches_total...) are the managed identity's: src/azure/plugin.ts.
  const stopProviders = vision.measure?.(metrics) ?? (() => {})
  const stopBackends = measureBackends(vision, metrics)
  return () => {
    stopBackends()
    stopProviders()
  }
}

function measureBackends (vision: VisionService, metrics: Metrics): () => void {
  const { registry } = metrics
  if (vision.backends === undefined || vision.onAttempt === undefined) return () => {}
  const requests = new Counter({
    name: 'agrivision_vision_backend_requests_total',
    help: 'Calls to each Azure OpenAI deployment by outcome: ok, rate_limited (429), error (5xx, connection), timeout, refused (400-class), aborted.',
    labelNames: ['backend_name', 'outcome'] as const,
    registers: [registry]
  })
  const duration = new Histogram({
    name: 'agrivision_vision_backend_request_duration_seconds',
    help: 'Duration of each call to an Azure OpenAI deployment (the SDK\'s retries on it included).',
    labelNames: ['backend_name'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
    registers: [registry]
  })
  const stop = vision.onAttempt(({ backend, outcome, seconds }) => {
    requests.inc({ backend_name: backend, outcome })
    duration.observe({ backend_name: backend }, seconds)
  })
  const read = vision.backends.bind(vision)
  // eslint-disable-next-line no-new -- registering is the point
  new Gauge({
    name: 'agrivision_vision_backend_state',
    help: 'Each Azure OpenAI deployment\'s routing state: 1 for its current state (CLOSED, HELD, OPEN, HALF_OPEN), 0 for the others.',
    labelNames: ['backend_name', 'state'] as const,
    registers: [registry],
    collect () {
      for (const backend of read()) {
        for (const state of STATES) this.set({ backend_name: backend.name, state }, backend.state === state ? 1 : 0)
      }
    }
  })
  // eslint-disable-next-line no-new -- registering is the point
  new Gauge({
    name: 'agrivision_vision_backend_consecutive_failures',
    help: 'Failed calls in a row to each Azure OpenAI deployment (its circuit breaker opens at VISION_BREAKER_FAILURES).',
    labelNames: ['backend_name'] as const,
    registers: [registry],
    collect () {
      for (const backend of read()) this.set({ backend_name: backend.name }, backend.consecutiveFailures)
    }
  })
  return stop
}
