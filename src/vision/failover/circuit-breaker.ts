// A circuit breaker per backend: after `failureThreshold` consecutive failures (5xx, connection failures,
// timeouts) the backend is OPEN and no request waits on it; after `coolDownMs` it is HALF_OPEN and lets
// exactly one request through as a probe. The probe's success closes it; its failure opens it again.
export type BreakerState = 'CLOSED' | 'OPEN' | 'HALF_OPEN'

export interface BreakerOptions {
  failureThreshold: number
  coolDownMs: number
  now?: () => number
}

export class CircuitBreaker {
  readonly #threshold: number
  readonly #coolDownMs: number
  readonly #now: () => number
  #failures = 0
  /** When OPEN ends (0: not open). */
  #openUntil = 0
  #probing = false

  constructor ({ failureThreshold, coolDownMs, now = Date.now }: BreakerOptions) {
    this.#threshold = failureThreshold
    this.#coolDownMs = coolDownMs
    this.#now = now
  }

  get state (): BreakerState {
    if (this.#openUntil === 0) return 'CLOSED'
    return this.#now() < this.#openUntil ? 'OPEN' : 'HALF_OPEN'
  }

  get consecutiveFailures (): number {
    return this.#failures
  }

  /** When an OPEN breaker lets a probe through (null unless open). */
  get reopensAt (): number | null {
    return this.state === 'OPEN' ? this.#openUntil : null
  }

  /** Whether a request may go now: closed, or half-open with no probe out yet. */
  get available (): boolean {
    const state = this.state
    return state === 'CLOSED' || (state === 'HALF_OPEN' && !this.#probing)
  }

  /** Call before sending a request that `available` allowed: in HALF_OPEN, it becomes the one probe. */
  begin (): void {
    if (this.state === 'HALF_OPEN') this.#probing = true
  }

  success (): void {
    this.#failures = 0
    this.#openUntil = 0
    this.#probing = false
  }

  failure (): void {
    this.#failures++
    const probeFailed = this.#probing
    this.#probing = false
    if (probeFailed || this.#failures >= this.#threshold) this.#openUntil = this.#now() + this.#coolDownMs
  }

  /** The request ended with neither verdict (the caller went away, a 429): a probe slot is given back. */
  release (): void {
    this.#probing = false
  }
}
