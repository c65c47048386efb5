// The backends of the azure vision service and which one a request goes to next: the lowest priority
// number among those that can take it, weighted within that priority. A backend cannot take a request
// while it is held (it answered 429: held for its retry-after) or its circuit breaker is open.
import type { AzureBackendConfig } from '../../azure/config.ts'
import { CircuitBreaker, type BreakerOptions, type BreakerState } from './circuit-breaker.ts'

/** 429 without retry-after (Azure always sends one; a proxy may not): hold it this long. */
export const DEFAULT_HOLD_MS = 1000
/**
 * A bogus retry-after must not take a backend out for hours; within this, Azure's word is kept (no call before the
 * hold ends). A deployment whose quota is spent for longer is tried again every 10 minutes.
 */
export const MAX_HOLD_MS = 600_000

export interface PoolBackend<Client> {
  readonly config: AzureBackendConfig
  readonly client: Client
  readonly breaker: CircuitBreaker
  /** Held after a 429 until this time (ms since the epoch; 0: not held). */
  heldUntil: number
}

export interface BackendSnapshot {
  name: string
  priority: number
  weight: number
  state: BreakerState | 'HELD'
  heldUntil: Date | null
  consecutiveFailures: number
}

/** Why no backend can take a request now, and the soonest one may. */
export interface Unavailable {
  /** Every backend is held by a 429. */
  allHeld: boolean
  /** Milliseconds until the soonest hold ends or open breaker lets a probe through. */
  soonestMs: number
}

export interface PoolOptions {
  breaker: Omit<BreakerOptions, 'now'>
  now?: () => number
  /** In [0, 1): the weighted pick (tests pass their own). */
  random?: () => number
}

export class BackendPool<Client> {
  readonly backends: ReadonlyArray<PoolBackend<Client>>
  readonly #now: () => number
  readonly #random: () => number

  constructor (
    entries: ReadonlyArray<{ config: AzureBackendConfig, client: Client }>, { breaker, now = Date.now, random = Math.random }: PoolOptions
  ) {
    this.#now = now
    this.#random = random
    this.backends = entries.map(({ config, client }) =>
      ({ config, client, breaker: new CircuitBreaker({ ...breaker, now }), heldUntil: 0 }))
  }

  /** The backend to try next, skipping those already tried for this request; null when none can take it. */
  choose (tried: ReadonlySet<PoolBackend<Client>> = new Set()): PoolBackend<Client> | null {
    const now = this.#now()
    const eligible = this.backends.filter(b => !tried.has(b) && b.heldUntil <= now && b.breaker.available)
    if (eligible.length === 0) return null
    const priority = Math.min(...eligible.map(b => b.config.priority))
    const group = eligible.filter(b => b.config.priority === priority)
    const chosen = pickWeighted(group, this.#random())
    chosen.breaker.begin()
    return chosen
  }

  /** A 429: no request goes to this backend for `ms` (its retry-after: 0 is none), or DEFAULT_HOLD_MS without one. */
  hold (backend: PoolBackend<Client>, ms: number | undefined): void {
    const wait = Math.min(ms ?? DEFAULT_HOLD_MS, MAX_HOLD_MS)
    backend.heldUntil = Math.max(backend.heldUntil, this.#now() + wait)
  }

  /** Whether some backend could take a request now (readiness). */
  anyAvailable (): boolean {
    const now = this.#now()
    return this.backends.some(b => b.heldUntil <= now && b.breaker.available)
  }

  unavailable (): Unavailable {
    const now = this.#now()
    const holds = this.backends.filter(b => b.heldUntil > now)
    const ends = this.backends.map(b => Math.max(b.heldUntil, b.breaker.reopensAt ?? 0)).filter(at => at > now)
    return {
      allHeld: holds.length === this.backends.length,
      soonestMs: ends.length === 0 ? 0 : Math.min(...ends) - now
    }
  }

  snapshot (): BackendSnapshot[] {
    const now = this.#now()
    return this.backends.map(b => ({
      name: b.config.name,
      priority: b.config.priority,
      weight: b.config.weight,
      state: b.heldUntil > now && b.breaker.state === 'CLOSED' ? 'HELD' : b.breaker.state,
      heldUntil: b.heldUntil > now ? new Date(b.heldUntil) : null,
      consecutiveFailures: b.breaker.consecutiveFailures
    }))
  }
}

function pickWeighted<T extends { config: { weight: number } }> (group: readonly T[], random: number): T {
  const total = group.reduce((sum, b) => sum + b.config.weight, 0)
  let point = random * total
  for (const backend of group) {
    point -= backend.config.weight
    if (point < 0) return backend
  }
  return group[group.length - 1] as T
}
