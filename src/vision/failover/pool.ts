// The providers behind the failover and which one a request goes to next: the lowest priority number
// among those that can take it, weighted within that priority. A provider cannot take a request while
// it is held (it answered 429: held for its retry-after) or its circuit breaker is open.
import { CircuitBreaker, type BreakerOptions, type BreakerState } from './circuit-breaker.ts'

/** 429 without retry-after (Azure always sends one; a proxy may not): hold it this long. */
export const DEFAULT_HOLD_MS = 1000
/**
 * A bogus retry-after must not take a backend out for hours; within this, Azure's word is kept (no call before the
 * hold ends). A deployment whose quota is spent for longer is tried again every 10 minutes.
 */
export const MAX_HOLD_MS = 600_000

/** What the pool needs to know of a provider (src/vision/provider.ts). */
export interface PoolMember {
  readonly name: string
  /** Lower first: 0 is tried before 1. */
  readonly priority: number
  /** Share of the traffic among members of the same priority. */
  readonly weight: number
}

export interface PoolBackend<Member extends PoolMember> {
  readonly provider: Member
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

export class BackendPool<Member extends PoolMember> {
  readonly backends: ReadonlyArray<PoolBackend<Member>>
  readonly #now: () => number
  readonly #random: () => number

  constructor (members: readonly Member[], { breaker, now = Date.now, random = Math.random }: PoolOptions) {
    this.#now = now
    this.#random = random
    this.backends = members.map(provider => ({ provider, breaker: new CircuitBreaker({ ...breaker, now }), heldUntil: 0 }))
  }

  /** The backend to try next, skipping those already tried for this request; null when none can take it. */
  choose (tried: ReadonlySet<PoolBackend<Member>> = new Set()): PoolBackend<Member> | null {
    const now = this.#now()
    const eligible = this.backends.filter(b => !tried.has(b) && b.heldUntil <= now && b.breaker.available)
    if (eligible.length === 0) return null
    const priority = Math.min(...eligible.map(b => b.provider.priority))
    const group = eligible.filter(b => b.provider.priority === priority)
    const chosen = pickWeighted(group, this.#random())
    chosen.breaker.begin()
    return chosen
  }

  /** A 429: no request goes to this backend for `ms` (its retry-after: 0 is none), or DEFAULT_HOLD_MS without one. */
  hold (backend: PoolBackend<Member>, ms: number | undefined): void {
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
      name: b.provider.name,
      priority: b.provider.priority,
      weight: b.provider.weight,
      state: b.heldUntil > now && b.breaker.state === 'CLOSED' ? 'HELD' : b.breaker.state,
      heldUntil: b.heldUntil > now ? new Date(b.heldUntil) : null,
      consecutiveFailures: b.breaker.consecutiveFailures
    }))
  }
}

function pickWeighted<T extends { provider: { weight: number } }> (group: readonly T[], random: number): T {
  const total = group.reduce((sum, b) => sum + b.provider.weight, 0)
  let point = random * total
  for (const backend of group) {
    point -= backend.provider.weight
    if (point < 0) return backend
  }
  return group[group.length - 1] as T
}
