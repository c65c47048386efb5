// The failover in front of one or several providers of the same model: each request goes to the best
// provider that can take it (pool.ts) and, when that one is throttled or failing, to the next at once,
// within the caller's VISION_TIMEOUT_MS. It knows no provider: each says what its failures mean (classify).
import type { FastifyBaseLogger } from 'fastify'
import { AppError, UpstreamRateLimitedError, UpstreamUnavailableError } from '../../errors.ts'
import type { Metrics } from '../../metrics/registry.ts'
import type { VisionProvider } from '../provider.ts'
import type { AttemptListener, AttemptOutcome, IdentifyRequest, IdentifyResult, VisionService, VisionStatus } from '../types.ts'
import { BackendPool, type PoolBackend } from './pool.ts'

export interface FailoverOptions {
  /** Whole call, retries and failover included (VISION_TIMEOUT_MS). */
  timeoutMs: number
  /** One provider's attempt (VISION_ATTEMPT_TIMEOUT_MS); default: timeoutMs with one provider, half of it with several. */
  attemptTimeoutMs?: number
  /** VISION_BREAKER_FAILURES and VISION_BREAKER_COOLDOWN_MS. */
  breaker: { failureThreshold: number, coolDownMs: number }
  /** What the providers are called in messages ("Azure OpenAI"). */
  label: string
  /** The cache identity's prefix ("azure"): `${prefix}:` and every provider's cacheIdentity(), sorted, joined by ','. */
  cacheNamespace: string
  log?: FastifyBaseLogger
  now?: () => number
  random?: () => number
}

/** The providers' functions called once each, even when several providers share one (see VisionProvider). */
function distinct<T> (values: ReadonlyArray<T | undefined>): T[] {
  return [...new Set(values.filter((value): value is T => value !== undefined))]
}

export function createFailover (providers: readonly VisionProvider[], options: FailoverOptions): VisionService {
  const first = providers[0]
  if (first === undefined) throw new Error('createFailover: at least one provider')
  const { timeoutMs, label, log, now = Date.now } = options
  const several = providers.length > 1
  const attemptTimeoutMs = Math.min(options.attemptTimeoutMs ?? (several ? Math.ceil(timeoutMs / 2) : timeoutMs), timeoutMs)
  const listeners: AttemptListener[] = []
  const pool = new BackendPool(providers, { breaker: options.breaker, now, random: options.random })
  const cacheIdentity = `${options.cacheNamespace}:` + providers.map(p => p.cacheIdentity()).sort().join(',')

  function observe (backend: PoolBackend<VisionProvider>, outcome: AttemptOutcome, startedAt: number): void {
    const attempt = { backend: backend.provider.name, outcome, seconds: (performance.now() - startedAt) / 1000 }
    for (const listener of listeners) listener(attempt)
  }

  /**
   * The error when no provider (or no further provider) can take the request: UPSTREAM_RATE_LIMITED only when
   * every provider is held (retryAfter: the soonest hold's end), else the last failure that was not a 429.
   */
  function exhausted (last: unknown, lastThrottle: unknown): unknown {
    const { allHeld, soonestMs } = pool.unavailable()
    const retryAfter = Math.max(1, Math.ceil(soonestMs / 1000))
    // One provider: its own 429 as it said it (retry-after uncapped, or 0).
    if (!several && lastThrottle !== undefined) return lastThrottle
    if (allHeld) {
      const which = several ? `Every ${label} deployment (${pool.backends.length}) is` : `The ${label} deployment is`
      return new UpstreamRateLimitedError(`${which} rate limited: try again in ${retryAfter} s.`, { retryAfterSeconds: retryAfter })
    }
    if (last !== undefined) return last
    return new UpstreamUnavailableError(
      `No ${label} deployment can take the request now (rate limited or failing): try again in ${retryAfter} s.`,
      { retryAfterSeconds: retryAfter })
  }

  return {
    backend: first.kind,

    async identify (request: IdentifyRequest): Promise<IdentifyResult> {
      const deadlineAt = now() + timeoutMs
      const deadline = AbortSignal.timeout(timeoutMs)
      const signal = AbortSignal.any([request.signal, deadline])
      const tried = new Set<PoolBackend<VisionProvider>>()
      let last: unknown
      let lastThrottle: unknown
      for (;;) {
        const remainingMs = deadlineAt - now()
        const backend = remainingMs > 0 ? pool.choose(tried) : null
        if (backend === null) {
          // Out of time: the last failure says why; out of providers: the pool's state does.
          const final = last ?? lastThrottle
          throw remainingMs <= 0 && final !== undefined ? final : exhausted(last, lastThrottle)
        }
        tried.add(backend)
        const { provider } = backend
        const startedAt = performance.now()
        const attemptMs = Math.min(attemptTimeoutMs, remainingMs)
        try {
          const hold = (ms: number | undefined): void => { pool.hold(backend, ms) }
          const result = await provider.identify(request, { signal, timeoutMs: attemptMs, hold })
          backend.breaker.success()
          observe(backend, 'ok', startedAt)
          return { ...result, backendName: provider.name }
        } catch (err) {
          const verdict = provider.classify(err, {
            timedOut: deadline.aborted, clientGone: request.signal.aborted, timeoutMs, attemptMs, alone: !several
          })
          observe(backend, verdict.outcome, startedAt)
          if (verdict.answered === true) {
            // It answered, with something the caller must hear (content filter, refusal, bad JSON twice): never asked again elsewhere.
            backend.breaker.success()
          } else if (verdict.outcome === 'rate_limited') {
            backend.breaker.release()
            pool.hold(backend, verdict.retryAfterMs)
          } else if (verdict.outcome === 'error' || verdict.outcome === 'timeout') {
            backend.breaker.failure()
          } else {
            backend.breaker.release()
          }
          if (!verdict.tryNext) throw verdict.error
          if (verdict.outcome === 'rate_limited') {
            lastThrottle = verdict.error
            continue
          }
          last = verdict.error
          if (several) {
            const { state, consecutiveFailures } = backend.breaker
            const code = verdict.error instanceof AppError ? verdict.error.code : undefined
            log?.warn({ backend: provider.name, code, breaker: state, consecutiveFailures }, `an ${label} backend failed: trying the next one`)
          }
        }
      }
    },

    status (): VisionStatus {
      const base = { backend: first.kind, deployment: first.deployment }
      for (const provider of providers) {
        const { ready, reason } = provider.status()
        if (!ready) return { ...base, ready: false, ...(reason === undefined ? {} : { reason }) }
      }
      if (pool.anyAvailable()) return { ...base, ready: true }
      // Open to anyone (/health/ready): say what, not the providers' own words (those go to the log).
      const soonest = `the soonest in ${Math.ceil(pool.unavailable().soonestMs / 1000)} s`
      return { ...base, ready: false, reason: `no ${label} deployment can take a request (rate limited or failing); ${soonest}` }
    },

    cacheIdentity: () => cacheIdentity,

    backends: () => pool.snapshot(),

    onAttempt (listener: AttemptListener): () => void {
      listeners.push(listener)
      return () => { listeners.splice(listeners.indexOf(listener) >>> 0, 1) }
    },

    async warmUp (): Promise<void> {
      for (const warmUp of distinct(providers.map(p => p.warmUp))) await warmUp()
    },

    measure (metrics: Metrics): () => void {
      const stops = distinct(providers.map(p => p.measure)).map(measure => measure(metrics))
      return () => { for (const stop of stops) stop() }
    },

    async close (): Promise<void> {
      for (const close of distinct(providers.map(p => p.close))) await close()
    }
  }
}
