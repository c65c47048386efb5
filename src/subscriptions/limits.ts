// How many subscriptions run: per caller (SUBSCRIPTIONS_PER_CALLER, across all its sockets on this
// instance) and in all (MAX_SUBSCRIPTIONS). A subscription holds a lease from its start to its end.
import { OverloadedError, TooManySubscriptionsError } from '../errors.ts'

export type LimitRefusal = 'per_caller' | 'max_subscriptions'

export class SubscriptionLimits {
  readonly #perCaller: number
  readonly #max: number
  readonly #byCaller = new Map<string, number>()
  readonly #refused: (reason: LimitRefusal) => void
  #active = 0

  constructor (perCaller: number, max: number, refused: (reason: LimitRefusal) => void = () => {}) {
    this.#perCaller = perCaller
    this.#max = max
    this.#refused = refused
  }

  get active (): number { return this.#active }

  /** Takes a lease for the caller; returns its release (idempotent). Throws when a limit is reached. */
  acquire (callerId: string): () => void {
    const held = this.#byCaller.get(callerId) ?? 0
    if (held >= this.#perCaller) {
      this.#refused('per_caller')
      throw new TooManySubscriptionsError(this.#perCaller)
    }
    if (this.#active >= this.#max) {
      this.#refused('max_subscriptions')
      throw new OverloadedError('This server holds as many subscriptions as it takes; try again later (or another instance).', 30)
    }
    this.#byCaller.set(callerId, held + 1)
    this.#active++
    let released = false
    return () => {
      if (released) return
      released = true
      this.#active--
      const left = (this.#byCaller.get(callerId) ?? 1) - 1
      if (left === 0) this.#byCaller.delete(callerId)
      else this.#byCaller.set(callerId, left)
    }
  }
}
