// Overload control for identifications: at most `maxConcurrency` run at once (upload read, image
// prepared, upstream call), at most `queueSize` wait for a slot, each for at most `queueTimeoutMs`.
// A request gets its slot BEFORE its upload is read, so memory stays bounded by
// maxConcurrency × MAX_UPLOAD_BYTES, and upstream concurrency never exceeds maxConcurrency.
// One caller holds (or waits for) at most `maxConcurrencyPerCaller` slots: the rest stay for others.
import { OverloadedError, RateLimitedError } from '../errors.ts'

export interface AdmissionOptions {
  maxConcurrency: number
  maxConcurrencyPerCaller: number
  queueSize: number
  queueTimeoutMs: number
}

export interface AdmissionObserver {
  /** Called with the time a request waited, when it gets a slot. */
  waited? (ms: number): void
  refused? (reason: 'queue_full' | 'queue_timeout' | 'caller_concurrency'): void
}

interface Waiter {
  grant: () => void
  fail: (err: Error) => void
}

export type Release = () => void

export class AdmissionGate {
  readonly options: AdmissionOptions
  #active = 0
  #queue: Waiter[] = []
  /** Slots held or waited for, per caller key. */
  #perCaller = new Map<string, number>()
  #observer: AdmissionObserver

  constructor (options: AdmissionOptions, observer: AdmissionObserver = {}) {
    this.options = options
    this.#observer = observer
  }

  get active (): number { return this.#active }
  get queued (): number { return this.#queue.length }

  /**
   * Wait for a slot on behalf of `caller`. Rejects with RATE_LIMITED (429) when that caller already
   * holds or waits for its share, with OVERLOADED (503) when the queue is full or the wait times out,
   * and with the signal's reason when the client goes away. The returned release is idempotent.
   */
  async acquire (caller: string, signal?: AbortSignal): Promise<Release> {
    const mine = this.#perCaller.get(caller) ?? 0
    if (mine >= this.options.maxConcurrencyPerCaller) {
      this.#observer.refused?.('caller_concurrency')
      throw new RateLimitedError(`At most ${this.options.maxConcurrencyPerCaller} identifications at once per caller: ` +
        'wait for one to finish. Try again in 1 s.', 1)
    }
    this.#perCaller.set(caller, mine + 1)
    try {
      return this.#forCaller(caller, await this.#acquireSlot(signal))
    } catch (err) {
      this.#leave(caller)
      throw err
    }
  }

  #forCaller (caller: string, release: Release): Release {
    let released = false
    return () => {
      if (released) return
      released = true
      this.#leave(caller)
      release()
    }
  }

  #leave (caller: string): void {
    const left = (this.#perCaller.get(caller) ?? 1) - 1
    if (left > 0) this.#perCaller.set(caller, left)
    else this.#perCaller.delete(caller)
  }

  async #acquireSlot (signal?: AbortSignal): Promise<Release> {
    if (this.#active < this.options.maxConcurrency) return this.#grant()
    if (this.#queue.length >= this.options.queueSize) {
      this.#observer.refused?.('queue_full')
      throw overloaded('The service is at capacity and its queue is full.', this.#retryAfterSeconds())
    }
    const started = performance.now()
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => { cleanup(); resolve() },
        fail: (err) => { cleanup(); reject(err) }
      }
      const timer = setTimeout(() => {
        this.#observer.refused?.('queue_timeout')
        waiter.fail(overloaded(`No capacity freed up within ${this.options.queueTimeoutMs} ms.`, this.#retryAfterSeconds()))
      }, this.options.queueTimeoutMs)
      const onAbort = () => waiter.fail(signal?.reason instanceof Error ? signal.reason : new Error('aborted'))
      const cleanup = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        const index = this.#queue.indexOf(waiter)
        if (index !== -1) this.#queue.splice(index, 1)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#queue.push(waiter)
    })
    this.#observer.waited?.(performance.now() - started)
    // The slot was handed over by the releasing request: #active already counts it.
    return this.#releaser()
  }

  #grant (): Release {
    this.#active++
    this.#observer.waited?.(0)
    return this.#releaser()
  }

  #releaser (): Release {
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.#queue.shift()
      if (next) next.grant() // hand the slot over: #active stays the same
      else this.#active--
    }
  }

  #retryAfterSeconds (): number {
    return Math.max(1, Math.ceil(this.options.queueTimeoutMs / 1000 / 4))
  }
}

function overloaded (message: string, retryAfter: number): OverloadedError {
  return new OverloadedError(`${message} Try again in ${retryAfter} s.`, retryAfter)
}
