// Prometheus metrics, one registry per app (no global default registry: tests build many apps).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * A metric's child for a list of label values, resolved once and kept (prom-client hashes a label object on every
 * inc/observe otherwise). For labels with few values only (routes, methods, status codes, outcomes, backends).
 */
export function labelled<M extends { labels: (...values: string[]) => unknown }> (metric: M): (...values: Array<string | number>) => ReturnType<M['labels']> {
  type C = ReturnType<M['labels']>
  const children = new Map<string, C>()
  return (...values) => {
    const key = values.join('\u0000')
    let child = children.get(key)
    if (child === undefined) {
      child = metric.labels(...values.map(String)) as C
      children.set(key, child)
    }
    return child
  }
}

export class Metrics {
  readonly registry = new Registry()

  readonly httpRequests = new Counter({
    name: 'agrivision_http_requests_total',
    help: 'HTTP requests by route, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry]
  })

  readonly httpDuration = new Histogram({
    name: 'agrivision_http_request_duration_seconds',
    help: 'HTTP request duration by route.',
    labelNames: ['route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry]
  })

  readonly identifications = new Counter({
    name: 'agrivision_identifications_total',
    help: 'Identifications by outcome (OK or the error code) and backend.',
    labelNames: ['outcome', 'backend'] as const,
    registers: [this.registry]
  })

  readonly upstreamDuration = new Histogram({
    name: 'agrivision_upstream_duration_seconds',
    help: 'Vision backend call duration (retries included) by outcome.',
    labelNames: ['outcome', 'backend'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
    registers: [this.registry]
  })

  readonly imageBytes = new Counter({
    name: 'agrivision_image_bytes_total',
    help: 'Image bytes received from clients and sent upstream.',
    labelNames: ['direction'] as const,
    registers: [this.registry]
  })

  readonly modelTokens = new Counter({
    name: 'agrivision_model_tokens_total',
    help: 'Tokens the model reported using, by kind (prompt, completion).',
    labelNames: ['kind'] as const,
    registers: [this.registry]
  })

  /** Shared by every limit (src/limits/, the rate limits), each counting its own reasons. */
  readonly refusals = new Counter({
    name: 'agrivision_refusals_total',
    help: 'Requests refused to protect the service: rate limit, overload (queue full, queue timeout, pressure).',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  })

  constructor () {
    collectDefaultMetrics({ register: this.registry })
  }

  /** A gauge read at scrape time from its source (queue depth...). */
  gauge (name: string, help: string, read: () => number): void {
    // eslint-disable-next-line no-new -- registering in this.registry is the point
    new Gauge({ name, help, registers: [this.registry], collect () { this.set(read()) } })
  }

  /** A counter kept elsewhere (the token provider's), copied at scrape time. */
  counterFrom (name: string, help: string, read: () => number): void {
    // eslint-disable-next-line no-new -- registering in this.registry is the point
    new Counter({ name, help, registers: [this.registry], collect () { this.reset(); this.inc(read()) } })
  }
}
