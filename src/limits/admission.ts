// Vision slots: at most `maxConcurrency` identifications do their work at once (image pipeline,
// model call), at most `queueSize` wait for a slot, each for at most `queueTimeoutMs`. Slots are
// taken by the identification flow (src/identification/flow.ts), whatever the entry point; an
// upload's body is received before, holding no slot (its bytes are bounded by src/limits/receiving.ts).
//
// Fair shares, whatever the capacity:
// - a freed slot goes to the waiting caller that holds the fewest slots (then the longest waiting),
//   so a caller holding slots never gets another one before a caller that waits with fewer;
// - a lone caller may use every slot while nobody else waits;
// - a caller holds or waits for at most `maxConcurrencyPerCaller` slots (429 at once beyond);
// - when the queue is full, a newcomer takes the place of the newest waiter of a caller with at
//   least two more slots held or waited for than the newcomer's caller (that waiter is refused
//   with 429), so one caller cannot fill the queue and keep the others out.
//
// The background lane (bulk jobs' items) is apart: at most `backgroundConcurrency` slots, counted beside
// `maxConcurrency`, never in the queue, never refused nor timed out. A background waiter gets a slot only while
// no interactive caller waits, so bulk work never makes an interactive caller wait or be refused.
import { OverloadedError, RateLimitedError } from '../errors.ts'

export interface AdmissionOptions {
  maxConcurrency: number
  maxConcurrencyPerCaller: number
  queueSize: number
  queueTimeoutMs: number
  /** Slots of the background lane (BULK_MAX_CONCURRENCY), beside maxConcurrency; 0: none (background waits for ever). */
  backgroundConcurrency?: number
}

/** interactive: a caller waiting for its answer; background: a bulk job's item. */
export type AdmissionLane = 'interactive' | 'background'

export type AdmissionRefusal = 'queue_full' | 'queue_timeout' | 'caller_concurrency' | 'fair_share'

export interface AdmissionObserver {
  /** Called with the time a request waited, when it gets a slot. */
  waited? (ms: number): void
  refused? (reason: AdmissionRefusal): void
}

export type Release = () => void

/** What an entry point needs of the slots: one for the work of one identification. */
export interface Admission {
  /**
   * Wait for a slot on behalf of `share` (the caller, as the rate limits key it). Rejects with
   * RATE_LIMITED (429) past the caller's share, with OVERLOADED (503) when the queue is full or the
   * wait times out, and with the signal's reason when the client goes away. The release is idempotent.
   * The background lane is never refused: it waits (until `signal` aborts) while interactive callers wait.
   */
  acquire (share: string, signal?: AbortSignal, lane?: AdmissionLane): Promise<Release>
}

interface Waiter {
  share: string
  grant: () => void
  fail: (err: Error) => void
}

export class AdmissionGate implements Admission {
  readonly options: AdmissionOptions
  #active = 0
  /** Waiters in arrival order; not empty only while every slot is taken. */
  #queue: Waiter[] = []
  #held = new Map<string, number>()
  #waiting = new Map<string, number>()
  #observer: AdmissionObserver
  #backgroundActive = 0
  #backgroundQueue: Array<() => void> = []

  constructor (options: AdmissionOptions, observer: AdmissionObserver = {}) {
    this.options = options
    this.#observer = observer
  }

  get active (): number { return this.#active }
  get queued (): number { return this.#queue.length }
  /** Background slots held now. */
  get backgroundActive (): number { return this.#backgroundActive }
  /** Slots held by `share` now. */
  heldBy (share: string): number { return this.#held.get(share) ?? 0 }

  async acquire (share: string, signal?: AbortSignal, lane: AdmissionLane = 'interactive'): Promise<Release> {
    signal?.throwIfAborted()
    if (lane === 'background') return await this.#acquireBackground(signal)
    const mine = this.#count(share)
    if (mine >= this.options.maxConcurrencyPerCaller) {
      this.#observer.refused?.('caller_concurrency')
      throw new RateLimitedError(`At most ${this.options.maxConcurrencyPerCaller} identifications at once per caller: ` +
        'wait for one to finish. Try again in 1 s.', 1)
    }
    if (this.#active < this.options.maxConcurrency) {
      this.#active++
      bump(this.#held, share, 1)
      this.#observer.waited?.(0)
      return this.#releaser(share)
    }
    if (this.#queue.length >= this.options.queueSize) this.#makeRoomFor(share, mine)
    await this.#wait(share, signal)
    return this.#releaser(share)
  }

  async #acquireBackground (signal?: AbortSignal): Promise<Release> {
    if (!this.#backgroundFree()) {
      await new Promise<void>((resolve, reject) => {
        const grant = (): void => { signal?.removeEventListener('abort', onAbort); resolve() }
        const onAbort = (): void => {
          const index = this.#backgroundQueue.indexOf(grant)
          if (index !== -1) this.#backgroundQueue.splice(index, 1)
          reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'))
        }
        signal?.addEventListener('abort', onAbort, { once: true })
        this.#backgroundQueue.push(grant)
      })
    } else {
      this.#backgroundActive++
    }
    let released = false
    return () => {
      if (released) return
      released = true
      this.#backgroundActive--
      this.#grantBackground()
    }
  }

  /** A background slot is free and no interactive caller waits. */
  #backgroundFree (): boolean {
    return this.#queue.length === 0 && this.#backgroundActive < (this.options.backgroundConcurrency ?? 0)
  }

  /** Hands free background slots to background waiters, while no interactive caller waits. */
  #grantBackground (): void {
    while (this.#backgroundQueue.length > 0 && this.#backgroundFree()) {
      this.#backgroundActive++
      ;(this.#backgroundQueue.shift() as () => void)()
    }
  }

  /** Held and waited for by `share`. */
  #count (share: string): number {
    return (this.#held.get(share) ?? 0) + (this.#waiting.get(share) ?? 0)
  }

  /** The queue is full: displace the newest waiter of a caller well over `share`'s count, or refuse. */
  #makeRoomFor (share: string, mine: number): void {
    let victim: Waiter | undefined
    let most = mine + 1 // a victim's caller must have at least two more than `share` has now
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      const waiter = this.#queue[i] as Waiter
      const count = this.#count(waiter.share)
      if (count > most) {
        most = count
        victim = waiter
      }
    }
    const retryAfter = this.#retryAfterSeconds()
    if (victim === undefined) {
      this.#observer.refused?.('queue_full')
      throw overloaded('The service is at capacity and its queue is full.', retryAfter)
    }
    this.#observer.refused?.('fair_share')
    victim.fail(new RateLimitedError('This caller already holds or waits for more identification slots than others ' +
      `waiting: its place in the queue went to another caller. Try again in ${retryAfter} s.`, retryAfter))
  }

  async #wait (share: string, signal?: AbortSignal): Promise<void> {
    const started = performance.now()
    bump(this.#waiting, share, 1)
    await new Promise<void>((resolve, reject) => {
      let settled = false
      const waiter: Waiter = {
        share,
        grant: () => { settle(); resolve() },
        fail: (err) => { settle(); reject(err) }
      }
      const timer = setTimeout(() => {
        this.#observer.refused?.('queue_timeout')
        waiter.fail(overloaded(`No capacity freed up within ${this.options.queueTimeoutMs} ms.`, this.#retryAfterSeconds()))
      }, this.options.queueTimeoutMs)
      const onAbort = (): void => waiter.fail(signal?.reason instanceof Error ? signal.reason : new Error('aborted'))
      const settle = (): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        bump(this.#waiting, share, -1)
        const index = this.#queue.indexOf(waiter)
        if (index !== -1) this.#queue.splice(index, 1)
        this.#grantBackground() // the last interactive waiter gone: background waiters may go
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#queue.push(waiter)
    })
    this.#observer.waited?.(performance.now() - started)
  }

  #releaser (share: string): Release {
    let released = false
    return () => {
      if (released) return
      released = true
      bump(this.#held, share, -1)
      const next = this.#next()
      if (next === undefined) {
        this.#active--
        this.#grantBackground() // no interactive caller waits: the background lane may go on
        return
      }
      bump(this.#held, next.share, 1) // the slot is handed over: #active stays the same
      next.grant()
    }
  }

  /** The waiter whose caller holds the fewest slots; the longest waiting among equals. */
  #next (): Waiter | undefined {
    let best: Waiter | undefined
    let fewest = Infinity
    for (const waiter of this.#queue) {
      const held = this.#held.get(waiter.share) ?? 0
      if (held < fewest) {
        fewest = held
        best = waiter
        if (held === 0) break
      }
    }
    return best
  }

  #retryAfterSeconds (): number {
    return Math.max(1, Math.ceil(this.options.queueTimeoutMs / 1000 / 4))
  }
}

function bump (counts: Map<string, number>, key: string, by: number): void {
  const value = (counts.get(key) ?? 0) + by
  if (value > 0) counts.set(key, value)
  else counts.delete(key)
}

function overloaded (message: string, retryAfter: number): OverloadedError {
  return new OverloadedError(`${message} Try again in ${retryAfter} s.`, retryAfter)
}
