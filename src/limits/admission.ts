// Overload control for identifications: at most `maxConcurrency` run at once (upload read, image
// prepared, upstream call), at most `queueSize` wait for a slot, each for at most `queueTimeoutMs`.
// A request gets its slot BEFORE its upload is read, so memory stays bounded by
// maxConcurrency × MAX_UPLOAD_BYTES, and upstream concurrency never exceeds maxConcurrency.
import { AppError } from '../errors.ts'

export interface AdmissionOptions {
  maxConcurrency: number
  queueSize: number
  queueTimeoutMs: number
}

export interface AdmissionObserver {
  /** Called with the time a request waited, when it gets a slot. */
  waited? (ms: number): void
  refused? (reason: 'queue_full' | 'queue_timeout'): void
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
  #observer: AdmissionObserver

  constructor (options: AdmissionOptions, observer: AdmissionObserver = {}) {
    this.options = options
    this.#observer = observer
  }

  get active (): number { return this.#active }
  get queued (): number { return this.#queue.length }

  /** True when a new request would be refused at once: tell it before reading anything. */
  get full (): boolean {
    return this.#active >= this.options.maxConcurrency && this.#queue.length >= this.options.queueSize
  }

  /**
   * Wait for a slot. Rejects with OVERLOADED (503) when the queue is full or the wait times out,
   * and with the signal's reason when the caller goes away. The returned release is idempotent.
   */
  async acquire (signal?: AbortSignal): Promise<Release> {
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

function overloaded (message: string, retryAfter: number): AppError {
  return new AppError('OVERLOADED', `${message} Try again in ${retryAfter} s.`, { statusCode: 503, extensions: { retryAfter } })
}
